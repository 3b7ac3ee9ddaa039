"""The per-run household cap (CHUNGTAY_MATCHING_MAX_HOUSEHOLDS_PER_RUN): one transaction funds
the top of the queue, the next run goes on where it stopped, and the order across runs is the
order one uncapped run would have funded."""

from datetime import date

from django.db import connection

from sponsorship.card_models import Card
from sponsorship.matching import services

from .conftest import PERIOD, communes, make_gift, make_household

SHARE = 379_080  # one near-poor member's donor share


def _stage_kept() -> bool:
    with connection.cursor() as cur:
        cur.execute("SELECT to_regclass('pg_temp.mstage') IS NOT NULL")
        return cur.fetchone()[0]


def test_capped_runs_fund_the_queue_in_priority_order_and_stop(ha_tinh, donor):
    a, b = communes(ha_tinh)
    # Months uncovered set the order: 12 (never covered), 7, 3; commune b's money may only go
    # to the second household.
    first = make_household(a, valid_until=None)
    second = make_household(b, valid_until=date(2025, 6, 1))
    third = make_household(a, valid_until=date(2025, 10, 1))
    make_gift(donor, 2 * SHARE)
    make_gift(donor, SHARE, locality=b)
    order, runs = [], []
    while True:
        run = services.match_province(province_id=ha_tinh.pk, period_start=PERIOD, max_households=1)
        runs.append(run)
        order += [c.household_id for c in Card.objects.exclude(household_id__in=order)]
        # Between capped runs the rest of the priced queue waits on this connection.
        assert _stage_kept() == run.capped
        if not run.capped:
            break
    assert [r.cards_funded for r in runs] == [1, 1, 1, 0]
    assert [r.capped for r in runs] == [True, True, True, False]
    # Commune money first (the most specific class), then the unrestricted money in score order.
    assert order == [second.pk, first.pk, third.pk]
    assert runs[-1].money_left_vnd == 0


def test_a_run_between_two_capped_runs_makes_the_next_one_price_again(ha_tinh, donor):
    commune = communes(ha_tinh)[0]
    for _ in range(3):
        make_household(commune)
    make_gift(donor, 3 * SHARE)
    first = services.match_province(province_id=ha_tinh.pk, period_start=PERIOD, max_households=1)
    assert first.capped and _stage_kept()
    # Another worker's run of the shard (recorded) comes in between: the kept queue is stale.
    from sponsorship.matching.models import MatchingRun

    MatchingRun.objects.create(province=ha_tinh, status="done")
    second = services.match_province(province_id=ha_tinh.pk, period_start=PERIOD, max_households=5)
    assert not second.capped and not _stage_kept()
    assert second.needs == 2 and second.cards_funded == 2
    assert Card.objects.count() == 3


def test_a_member_suspended_between_capped_runs_is_left_out_and_comes_back_if_approved_again(ha_tinh, donor, make_user):
    from beneficiaries.models import Member, MemberStatus
    from beneficiaries.services.review import member_suspend
    from sponsorship.services.ledger import check_invariants

    commune = communes(ha_tinh)[0]
    first = make_household(commune, valid_until=None)
    second = make_household(commune, valid_until=date(2025, 6, 1))
    third = make_household(commune, valid_until=date(2025, 10, 1))
    make_gift(donor, 3 * SHARE)
    run = services.match_province(province_id=ha_tinh.pk, period_start=PERIOD, max_households=1)
    assert run.capped and _stage_kept()
    member = second.members.get()
    member_suspend(user=make_user("front_reviewer", ha_tinh), member=member, reason="moved away")
    run = services.match_province(province_id=ha_tinh.pk, period_start=PERIOD, max_households=1)
    # The kept queue goes on without the suspended member: the third household is funded.
    assert run.capped and run.needs == 1 and run.cards_funded == 1
    assert set(Card.objects.values_list("household_id", flat=True)) == {first.pk, third.pk}
    # Leaving one run out does not take a member out of the pass: approved again (set directly,
    # review has no suspended → approved step), the next run of the same pass funds them.
    Member.objects.filter(pk=member.pk).update(status=MemberStatus.APPROVED)
    run = services.match_province(province_id=ha_tinh.pk, period_start=PERIOD, max_households=1)
    assert run.needs == 1 and run.cards_funded == 1
    assert Card.objects.filter(household=second).exists()
    run = services.match_province(province_id=ha_tinh.pk, period_start=PERIOD, max_households=1)
    assert not run.capped and run.needs == 0 and not _stage_kept()
    assert check_invariants() == []


def test_money_refunded_between_capped_runs_is_not_spent_by_the_next(ha_tinh, donor):
    from sponsorship.matching.models import Allocation, MatchingRun
    from sponsorship.services.ledger import check_invariants

    from .test_unmatch import card_gift, refund

    commune = communes(ha_tinh)[0]
    first = make_household(commune, valid_until=None)
    second = make_household(commune, valid_until=date(2025, 6, 1))
    make_household(commune, valid_until=date(2025, 10, 1))
    spent = card_gift(donor, SHARE)  # paid first: all of it funds the first household
    later = card_gift(donor, 2 * SHARE)
    run = services.match_province(province_id=ha_tinh.pk, period_start=PERIOD, max_households=1)
    assert run.capped and _stage_kept()
    assert Allocation.objects.filter(donation=spent).count() == 1
    refund(later, SHARE)  # money not yet allocated: nothing is un-matched
    assert MatchingRun.objects.count() == 1  # the pass goes on
    run = services.match_province(province_id=ha_tinh.pk, period_start=PERIOD, max_households=1)
    assert run.money_in_vnd == SHARE and run.cards_funded == 1 and run.capped
    run = services.match_province(province_id=ha_tinh.pk, period_start=PERIOD, max_households=1)
    # The refunded half is gone: the third household waits for new money.
    assert run.money_in_vnd == 0 and run.cards_funded == 0 and not run.capped
    assert set(Card.objects.values_list("household_id", flat=True)) == {first.pk, second.pk}
    assert sum(Allocation.objects.filter(donation=later).values_list("amount_vnd", flat=True)) == SHARE
    assert check_invariants() == []
