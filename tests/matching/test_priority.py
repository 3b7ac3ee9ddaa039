"""The target gap in the priority score: a commune further behind its yearly target is funded
first, the explanation says so, and the weights are data (MatchingRule)."""

from datetime import date
from decimal import Decimal

from sponsorship.card_models import Card
from sponsorship.enrollment.targets import target_upsert
from sponsorship.matching import services
from sponsorship.matching.models import Allocation, MatchingRule

from .conftest import PERIOD, communes, make_gift, make_household

SHARE = 379_080  # one near-poor member's donor share from 2024-07-01


def run(province):
    return services.match_province(province_id=province.pk, period_start=PERIOD)


def test_the_commune_further_behind_its_target_is_funded_first(ha_tinh, donor):
    ahead, behind = communes(ha_tinh)
    # Created first, so without the gap term the tie (same class, months, waiting) goes to `ahead`.
    make_household(ahead)
    hh_behind = make_household(behind)
    target_upsert(locality=ahead, year=PERIOD.year, type="hi", number=1000, baseline=990)  # 1 % behind
    target_upsert(locality=behind, year=PERIOD.year, type="hi", number=1000, baseline=400)  # 60 % behind
    target_upsert(locality=ha_tinh, year=PERIOD.year, type="hi", number=10_000, baseline=7_500)  # 25 % behind
    make_gift(donor, SHARE)  # money for one card only
    result = run(ha_tinh)
    assert result.cards_funded == 1
    assert Card.objects.get().household == hh_behind
    alloc = Allocation.objects.get()
    assert alloc.components["gap"] == 60 and alloc.components["province_gap"] == 25
    # score = 1 × 60 + 1 × 25 + 5 × 12 months + 60 (near-poor) + 1 × 0 days
    assert alloc.score == Decimal("205.000")
    assert result.money_left_vnd == 0


def test_gap_weights_are_data(ha_tinh, donor):
    ahead, behind = communes(ha_tinh)
    hh_ahead = make_household(ahead)
    make_household(behind)
    target_upsert(locality=behind, year=PERIOD.year, type="hi", number=1000, baseline=0)
    # A new rule version that ignores the gap: the tie falls back to the household order.
    MatchingRule.objects.update(is_active=False)
    MatchingRule.objects.create(version=2, gap_weight=0, province_gap_weight=0)
    make_gift(donor, SHARE)
    run(ha_tinh)
    assert Card.objects.get().household == hh_ahead
    assert Allocation.objects.get().rule_version == 2


def test_enrollments_close_the_gap(ha_tinh):
    from sponsorship.enrollment.models import EnrollmentRollup

    commune = communes(ha_tinh)[0]
    target_upsert(locality=commune, year=PERIOD.year, type="hi", number=200, baseline=100)
    assert services.target_gaps(year=PERIOD.year, product="hi_household")[commune.pk] == 50
    EnrollmentRollup.objects.create(
        locality=commune, province=ha_tinh, level="commune", year=PERIOD.year, month=3, type="hi", new_enrollments=60
    )
    assert services.target_gaps(year=PERIOD.year, product="hi_household")[commune.pk] == 20
    EnrollmentRollup.objects.create(
        locality=commune, province=ha_tinh, level="commune", year=PERIOD.year, month=4, type="hi", new_enrollments=90
    )
    assert services.target_gaps(year=PERIOD.year, product="hi_household")[commune.pk] == 0  # never below zero


def test_strict_priority_keeps_money_pooled_rather_than_skipping_to_a_lower_household(ha_tinh, donor):
    """Decision (README): the first household in score order that the money cannot cover stops
    the run; a smaller household further down is not funded ahead of it."""
    commune = communes(ha_tinh)[0]
    first = make_household(commune, size=2, valid_until=date(2025, 1, 1))  # 12 months uncovered
    make_household(commune, size=1, valid_until=date(2025, 6, 1))  # 7 months uncovered
    make_gift(donor, SHARE + SHARE // 2)  # covers the small household, not the first one
    result = run(ha_tinh)
    assert result.cards_funded == 0 and result.money_left_vnd == SHARE + SHARE // 2
    make_gift(donor, SHARE // 2)  # the next gift completes the first household
    result = run(ha_tinh)
    assert result.cards_funded == 2
    assert set(Card.objects.values_list("household", flat=True)) == {first.pk}
