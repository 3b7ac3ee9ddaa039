import csv
import io

import pytest

from sponsorship.card_models import Card
from sponsorship.matching import services
from sponsorship.matching.models import Allocation, MatchingRun, RunStatus
from sponsorship.services.ledger import check_invariants, fund_balances

from .conftest import PERIOD, communes, make_gift, make_household

NEAR_POOR_2026 = 379_080  # 30 % of 1,263,600 (premium from 2024-07-01)


def run(province):
    return services.match_province(province_id=province.pk, period_start=PERIOD)


def test_cleared_gift_funds_a_card_with_ledger_and_explanation(ha_tinh, donor):
    commune = communes(ha_tinh)[0]
    hh = make_household(commune)
    gift = make_gift(donor, 500_000)
    result = run(ha_tinh)
    assert result.status == RunStatus.DONE and result.cards_funded == 1
    card = Card.objects.get(household=hh)
    assert card.status == "funded" and card.donor_share_vnd == NEAR_POOR_2026
    alloc = Allocation.objects.get(card=card)
    assert alloc.donation == gift and alloc.amount_vnd == NEAR_POOR_2026 and alloc.rule_version == 1
    assert set(alloc.components) == {"gap", "province_gap", "months_uncovered", "poverty_class", "waiting_days"}
    assert result.money_in_vnd == 500_000 and result.money_left_vnd == 500_000 - NEAR_POOR_2026
    assert fund_balances("allocated_to_cards") == {gift.fund_key: NEAR_POOR_2026}
    assert check_invariants() == []
    # Enrollment (remittance, rejection refunds, the donor's gift page) reads these allocations.
    from sponsorship.enrollment.batches import _fund_amounts

    assert _fund_amounts([card.pk]) == {gift.fund_key: NEAR_POOR_2026}
    again = run(ha_tinh)  # safe to re-run: nothing left to fund
    assert again.cards_funded == 0 and Allocation.objects.count() == 1


def test_small_gifts_pool_until_a_whole_household_is_covered(ha_tinh, donor):
    commune = communes(ha_tinh)[0]
    make_household(commune, size=2)
    make_gift(donor, NEAR_POOR_2026)
    assert run(ha_tinh).cards_funded == 0  # half a household is not funded
    make_gift(donor, NEAR_POOR_2026 // 2)
    make_gift(donor, NEAR_POOR_2026)
    result = run(ha_tinh)
    assert result.cards_funded == 2 and result.allocations >= 3
    assert check_invariants() == []


def test_restrictions_are_obeyed(ha_tinh, ha_noi, donor):
    a, b = communes(ha_tinh)
    make_household(a)
    hb = make_household(b)
    make_gift(donor, 1_000_000, locality=b)
    make_gift(donor, 1_000_000, locality=communes(ha_noi)[0])
    make_gift(donor, 1_000_000, product="si_voluntary")
    result = run(ha_tinh)
    assert result.cards_funded == 1
    assert Card.objects.get().household == hb


def test_priority_order_is_respected(ha_tinh, donor):
    commune = communes(ha_tinh)[0]
    make_household(commune, poverty_class="near_poor")
    lapsed = make_household(commune, poverty_class="near_poor", valid_until=PERIOD.replace(year=2025))
    make_gift(donor, NEAR_POOR_2026)
    run(ha_tinh)
    card = Card.objects.get()
    assert card.household == lapsed or Allocation.objects.get().components["months_uncovered"] == 12


def test_a_run_killed_mid_way_leaves_nothing(ha_tinh, donor, monkeypatch):
    make_household(communes(ha_tinh)[0])
    make_gift(donor, 500_000)

    def boom(**kwargs):
        raise RuntimeError("worker killed")

    monkeypatch.setattr(services, "ledger_post", boom)
    with pytest.raises(RuntimeError):
        run(ha_tinh)
    assert Card.objects.count() == 0 and Allocation.objects.count() == 0
    assert MatchingRun.objects.get().status == RunStatus.FAILED
    assert check_invariants() == []


def test_database_refuses_an_over_funded_card(ha_tinh, donor):
    from django.db import IntegrityError, transaction

    make_household(communes(ha_tinh)[0])
    gift = make_gift(donor, 2_000_000)
    r = run(ha_tinh)
    alloc = Allocation.objects.get()
    with pytest.raises(IntegrityError), transaction.atomic():
        Allocation.objects.filter(pk=alloc.pk).update(amount_vnd=alloc.amount_vnd + 1)
    other = make_gift(donor, 10)
    with pytest.raises(IntegrityError), transaction.atomic():
        Allocation.objects.create(
            run=r, donation=other, card=alloc.card, fund=gift.fund_key, amount_vnd=5, score=0, rule_version=1
        )


def test_money_of_a_card_the_agency_rejects_goes_back_to_the_pool_and_is_matched_again(ha_tinh, donor):
    from sponsorship.enrollment import batches, cardlist

    commune = communes(ha_tinh)[0]
    make_household(commune)
    gift = make_gift(donor, NEAR_POOR_2026)
    assert run(ha_tinh).cards_funded == 1
    card = Card.objects.get()
    batch = batches.batch_create(locality=commune, product=card.product, period=PERIOD)
    batches.batch_submit(batch_id=batch.pk)
    rows = cardlist.d10a_rows_for_cards([card], reject={card.pk: "Đã có thẻ"})
    buf = io.StringIO()
    csv.writer(buf).writerows([cardlist.D10A_HEADERS, *rows])
    content = buf.getvalue().encode()
    job = cardlist.cardlist_import(content=content, file_name="d10a.csv")
    card.refresh_from_db()
    assert job.rejected == 1 and card.status == "rejected"
    assert not Allocation.objects.filter(card=card).exists()
    assert fund_balances("allocated_to_cards").get(gift.fund_key, 0) == 0
    assert check_invariants() == []
    # The returned money funds the next household on the next run, exactly once; the rejected
    # member waits for re-approval (matching/exclusions.py, tests/matching/test_exclusions.py).
    other = make_household(commune)
    again = run(ha_tinh)
    assert again.money_in_vnd == NEAR_POOR_2026 and again.cards_funded == 1
    assert Card.objects.get(status="funded").household == other
    assert check_invariants() == []
