"""Matching starts by itself: cleared money and approved members enqueue one delayed run per
province shard after commit (deduplicated by a Redis flag), on the real Redis broker."""

import json

import pytest
from django.db import transaction

from beneficiaries.models import MemberStatus
from beneficiaries.services.review import member_approve, members_bulk_approve
from sponsorship import tasks
from sponsorship.card_models import Card
from sponsorship.matching import triggers
from sponsorship.matching.services import current_period_start
from sponsorship.models import Account, Donation
from sponsorship.services.donations import donation_create, recompute_money
from sponsorship.services.ledger import credit, debit, ledger_post

from .conftest import communes, make_household


@pytest.fixture
def broker(settings):
    """The test Redis database's default Celery queue, emptied before and after."""
    r = triggers._redis()
    r.delete("celery")
    for key in r.scan_iter(match=f"*{triggers.FLAG.split('{')[0]}*"):
        r.delete(key)
    yield r
    r.delete("celery")
    for key in r.scan_iter(match=f"*{triggers.FLAG.split('{')[0]}*"):
        r.delete(key)


def queued_matches(r, task="sponsorship.tasks.match_province") -> list[str]:
    out = []
    for raw in r.lrange("celery", 0, -1):
        headers = json.loads(raw)["headers"]
        if headers["task"] == task:
            out.append(headers["argsrepr"])
    return out


def pay_by_bank(donation: Donation, amount: int, n: int) -> None:
    """The single bank path's money step: post the line's money, recompute (which calls the hook)."""
    with transaction.atomic():
        locked = Donation.objects.select_for_update().get(pk=donation.pk)
        ledger_post(
            key=f"bank_paid:test-trigger:{donation.pk}:{n}",
            kind="bank_paid",
            donation=locked,
            entries=[debit(Account.BANK_CLEARING, amount), credit(Account.DONOR_FUNDS, amount, locked.fund_key)],
        )
        recompute_money(locked, "test payment")


def test_cleared_money_enqueues_one_run_for_its_province_after_commit(
    ha_tinh, donor, broker, django_capture_on_commit_callbacks
):
    commune = communes(ha_tinh)[0]
    make_household(commune)
    gift, _ = donation_create(donor=donor, method="bank", amount_vnd=800_000, locality=commune)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        pay_by_bank(gift, 400_000, 1)
    assert queued_matches(broker) == []  # nothing before commit
    for cb in callbacks:
        cb()
    assert queued_matches(broker) == [f"({ha_tinh.pk},)"]
    # A burst (the rest of the money a moment later) does not enqueue a second run.
    with django_capture_on_commit_callbacks(execute=True):
        pay_by_bank(gift, 400_000, 2)
    assert queued_matches(broker) == [f"({ha_tinh.pk},)"]


def test_the_queued_task_clears_its_flag_and_funds_the_card(ha_tinh, donor, broker, django_capture_on_commit_callbacks):
    commune = communes(ha_tinh)[0]
    hh = make_household(commune)
    # (current period: the premium of the month after today, whatever the base salary then)
    gift, _ = donation_create(donor=donor, method="bank", amount_vnd=1_000_000, locality=commune)
    with django_capture_on_commit_callbacks(execute=True):
        pay_by_bank(gift, 1_000_000, 1)
    assert broker.exists(triggers.flag_key(ha_tinh.pk))
    tasks.match_province.apply(args=(ha_tinh.pk,))  # what the worker does with the message
    assert not broker.exists(triggers.flag_key(ha_tinh.pk))
    card = Card.objects.get(household=hh)
    assert card.status == "funded" and card.period_start == current_period_start()
    # New money after the run asks for a new run.
    with django_capture_on_commit_callbacks(execute=True):
        pay_by_bank(gift, 1_000, 2)
    assert len(queued_matches(broker)) == 2


def test_unrestricted_money_enqueues_one_fan_out_over_every_province_with_approved_members(
    ha_tinh, ha_noi, donor, broker, django_capture_on_commit_callbacks
):
    make_household(communes(ha_tinh)[0])
    make_household(communes(ha_noi)[0])
    gift, _ = donation_create(donor=donor, method="bank", amount_vnd=400_000)
    other, _ = donation_create(donor=donor, method="bank", amount_vnd=400_000)
    with django_capture_on_commit_callbacks(execute=True):
        pay_by_bank(gift, 400_000, 1)
        pay_by_bank(other, 400_000, 1)
    assert queued_matches(broker, "sponsorship.tasks.match_all") == ["()"]
    broker.delete("celery")
    tasks.match_all.apply()  # the worker: clears the flag, one run per province
    assert not broker.exists(triggers.flag_key(triggers.ALL))
    assert sorted(queued_matches(broker)) == sorted([f"({ha_tinh.pk},)", f"({ha_noi.pk},)"])


def test_approving_members_enqueues_their_province(ha_tinh, make_user, broker, django_capture_on_commit_callbacks):
    commune = communes(ha_tinh)[0]
    hh = make_household(commune, size=3)
    members = list(hh.members.order_by("pk"))
    hh.members.update(status=MemberStatus.SUBMITTED)
    reviewer = make_user("front_reviewer", ha_tinh)
    with django_capture_on_commit_callbacks(execute=True):
        member_approve(user=reviewer, member=members[0])
    assert queued_matches(broker) == [f"({ha_tinh.pk},)"]
    broker.delete("celery", triggers.flag_key(ha_tinh.pk))
    with django_capture_on_commit_callbacks(execute=True):
        result = members_bulk_approve(user=reviewer, members=members[1:])
    assert result["approved"] == 2
    assert queued_matches(broker) == [f"({ha_tinh.pk},)"]  # one run for the whole bulk approval


def test_a_bank_statement_batch_enqueues_one_run_for_many_pledges(
    ha_tinh, donor, make_user, broker, django_capture_on_commit_callbacks
):
    import csv
    import io

    from sponsorship.services import bank

    commune = communes(ha_tinh)[0]
    make_household(commune)
    pledges = [donation_create(donor=donor, method="bank", amount_vnd=500_000, locality=commune)[0] for _ in range(5)]
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["date", "amount", "description", "bank reference", "counter-account"])
    for i, p in enumerate(pledges):
        writer.writerow(["01/11/2026", "500000", f"ung ho {p.reference}", f"FT{i}", ""])
    finance = make_user("finance")
    statement = bank.statement_import(name="s.csv", content=buf.getvalue().encode(), by=finance)
    broker.delete("celery")
    with django_capture_on_commit_callbacks(execute=True):
        counts = bank.match_lines(statement_id=statement.pk)
    assert counts["matched"] == 5
    assert queued_matches(broker) == [f"({ha_tinh.pk},)"]
