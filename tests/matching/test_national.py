"""Unrestricted money goes where the national priority order says (sponsorship/matching/
national.py): a province whose waiting households rank lower does not spend it just because its
run came first; it leaves it for the province that ranks higher."""

from datetime import timedelta
from decimal import Decimal

from django.utils import timezone

from sponsorship.card_models import Card
from sponsorship.enrollment.targets import target_upsert
from sponsorship.matching import services
from sponsorship.matching.models import MatchingDemand

from .conftest import PERIOD, communes, make_gift, make_household

SHARE = 379_080  # one near-poor member's donor share from 2024-07-01


def run(province):
    return services.match_province(province_id=province.pk, period_start=PERIOD)


def two_provinces(ha_tinh, ha_noi):
    """A household in each province; Hà Nội's commune is 60 % behind its target, so its
    household ranks higher (score 60 points above Hà Tĩnh's). Both queues published once."""
    low = make_household(communes(ha_tinh)[0])
    behind = communes(ha_noi)[0]
    high = make_household(behind)
    target_upsert(locality=behind, year=PERIOD.year, type="hi", number=1000, baseline=400)
    run(ha_tinh), run(ha_noi)  # no money yet: each run publishes its queue
    return low, high


def test_a_lower_ranked_province_leaves_unrestricted_money_to_a_higher_one(ha_tinh, ha_noi, donor):
    low, high = two_provinces(ha_tinh, ha_noi)
    make_gift(donor, SHARE)  # for anywhere; enough for one card
    first = run(ha_tinh)
    assert first.cards_funded == 0 and first.money_left_vnd == SHARE
    # The cutoff is Hà Nội's household's score: 60 (gap) + 60 (12 months) + 60 (near-poor).
    assert first.unrestricted_cutoff == Decimal("180.0")
    second = run(ha_noi)
    assert second.cards_funded == 1
    assert list(Card.objects.values_list("household", flat=True)) == [high.pk]
    # Hà Nội's published queue is now empty; Hà Tĩnh's still holds its household.
    assert MatchingDemand.objects.get(province=ha_noi).curve == []
    assert MatchingDemand.objects.get(province=ha_tinh).curve == [["120.0", SHARE]]


def test_money_for_every_queue_has_no_cutoff(ha_tinh, ha_noi, donor):
    low, high = two_provinces(ha_tinh, ha_noi)
    make_gift(donor, 2 * SHARE)
    first = run(ha_tinh)
    assert first.unrestricted_cutoff is None and first.cards_funded == 1
    run(ha_noi)
    assert set(Card.objects.values_list("household", flat=True)) == {low.pk, high.pk}


def test_a_queue_not_published_lately_holds_nothing_back(ha_tinh, ha_noi, donor):
    low, high = two_provinces(ha_tinh, ha_noi)
    # Hà Nội has not run for longer than CHUNGTAY_MATCHING_DEMAND_MAX_AGE_SECONDS.
    MatchingDemand.objects.filter(province=ha_noi).update(updated_at=timezone.now() - timedelta(hours=1))
    make_gift(donor, SHARE)
    first = run(ha_tinh)
    assert first.cards_funded == 1 and first.unrestricted_cutoff is None
    assert list(Card.objects.values_list("household", flat=True)) == [low.pk]


def test_money_for_the_province_is_not_held_back(ha_tinh, ha_noi, donor):
    low, high = two_provinces(ha_tinh, ha_noi)
    make_gift(donor, SHARE, locality=ha_tinh)  # given for Hà Tĩnh: the national order does not apply
    assert run(ha_tinh).cards_funded == 1
    assert list(Card.objects.values_list("household", flat=True)) == [low.pk]


def test_the_runs_page_and_api_show_how_far_down_unrestricted_money_reached(client, ha_tinh, ha_noi, donor, make_user):
    from rest_framework.test import APIClient

    from donors.models import Role

    two_provinces(ha_tinh, ha_noi)
    make_gift(donor, SHARE)
    run(ha_tinh)
    finance = make_user(Role.FINANCE)
    api = APIClient()
    api.force_authenticate(finance)
    latest = api.get("/api/matching/runs/").json()[0]
    assert (latest["province_id"], latest["unrestricted_cutoff"], latest["capped"]) == (ha_tinh.pk, "180.0", False)
    client.force_login(finance)
    page = client.get("/matching/", HTTP_ACCEPT_LANGUAGE="vi").content.decode()
    assert "Tiền không chỉ định: điểm thấp nhất" in page and "<td>180,0</td>" in page  # Vietnamese decimal comma


def test_the_cutoff_counts_what_the_province_s_own_restricted_money_just_funded(ha_tinh, donor):
    # The top household is funded by money given for its commune; the money for anywhere then
    # reaches the next one in the same run (the queue is read after the restricted money).
    behind, other = communes(ha_tinh)
    top = make_household(behind)
    target_upsert(locality=behind, year=PERIOD.year, type="hi", number=1000, baseline=400)
    nxt = make_household(other)
    make_gift(donor, SHARE, locality=behind)
    make_gift(donor, SHARE)
    result = run(ha_tinh)
    assert result.cards_funded == 2 and result.money_left_vnd == 0
    assert set(Card.objects.values_list("household", flat=True)) == {top.pk, nxt.pk}
    assert MatchingDemand.objects.get(province=ha_tinh).curve == []
