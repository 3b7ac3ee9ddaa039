import pytest
from django.db import IntegrityError, connection, transaction
from hypothesis import given, settings
from hypothesis import strategies as st

from config.exceptions import ApplicationError
from sponsorship.models import Account, LedgerAlarm, LedgerEntry, LedgerTransaction
from sponsorship.services import ledger

FUND = "loc=*;prod=*;grp=*;camp=*"


def receive(key: str, amount: int, fee: int = 0):
    return ledger.ledger_post(
        key=key,
        kind="card_paid",
        entries=[
            ledger.debit(Account.STRIPE_CLEARING, amount - fee),
            ledger.debit(Account.FEES, fee),
            ledger.credit(Account.DONOR_FUNDS, amount, FUND),
        ],
    )


@pytest.mark.django_db
def test_posting_the_same_key_twice_writes_money_once():
    tx1, created1 = receive("card_paid:pi_1", 500_000, fee=12_000)
    tx2, created2 = receive("card_paid:pi_1", 500_000, fee=12_000)
    assert (created1, created2) == (True, False)
    assert tx1.pk == tx2.pk
    assert ledger.natural_balance(Account.DONOR_FUNDS, FUND) == 500_000
    assert ledger.balance(Account.STRIPE_CLEARING) == 488_000
    assert ledger.balance(Account.FEES) == 12_000


@pytest.mark.django_db
def test_an_unbalanced_transaction_is_refused_before_writing():
    with pytest.raises(ApplicationError, match="does not balance"):
        ledger.ledger_post(
            key="bad",
            entries=[ledger.debit(Account.STRIPE_CLEARING, 100), ledger.credit(Account.DONOR_FUNDS, 90, FUND)],
        )
    assert LedgerTransaction.objects.count() == 0


@pytest.mark.django_db
def test_reusing_a_key_for_different_money_is_an_error():
    receive("card_paid:pi_2", 100_000)
    with pytest.raises(ApplicationError, match="already used"):
        receive("card_paid:pi_2", 200_000)


@pytest.mark.django_db(transaction=True)
def test_the_database_refuses_an_unbalanced_transaction_at_commit():
    tx, _ = receive("card_paid:pi_3", 100_000)
    with pytest.raises(IntegrityError, match="does not balance"):
        with transaction.atomic():
            LedgerEntry.objects.create(transaction=tx, account=Account.FEES, amount=1)
    assert ledger.balance(Account.FEES) == 0


@pytest.mark.django_db
def test_fund_accounts_need_a_fund_and_amounts_are_integers():
    with pytest.raises(ApplicationError):
        ledger.ledger_post(
            key="x", entries=[ledger.debit(Account.STRIPE_CLEARING, 5), ledger.credit(Account.DONOR_FUNDS, 5)]
        )
    with pytest.raises(ApplicationError, match="integer"):
        ledger.ledger_post(
            key="y", entries=[ledger.Entry(Account.STRIPE_CLEARING, 5.0), ledger.Entry(Account.DONOR_FUNDS, -5.0, FUND)]
        )


@pytest.mark.django_db
def test_healthy_books_raise_no_alarm_and_a_negative_fund_raises_a_visible_one(caplog):
    receive("card_paid:pi_4", 300_000)
    assert ledger.run_invariant_check() == []
    ledger.ledger_post(
        key="allocation:1",
        kind="allocation",
        entries=[
            ledger.debit(Account.DONOR_FUNDS, 400_000, FUND),
            ledger.credit(Account.ALLOCATED_TO_CARDS, 400_000, FUND),
        ],
    )
    alarms = ledger.run_invariant_check()
    assert [a.check_name for a in alarms] == ["nothing_negative"]
    assert "donor_funds" in alarms[0].message
    assert any("ledger invariant broken" in r.message for r in caplog.records)
    ledger.run_invariant_check()
    assert LedgerAlarm.objects.filter(resolved_at=None).count() == 1


@pytest.mark.django_db
def test_money_moved_outside_known_flows_breaks_the_funds_equation():
    receive("card_paid:pi_5", 300_000)
    ledger.ledger_post(
        key="mystery:1",
        kind="mystery",
        entries=[ledger.debit(Account.DONOR_FUNDS, 1_000, FUND), ledger.credit(Account.BANK_CLEARING, 1_000)],
    )
    assert "funds_equation" in [name for name, _ in ledger.check_invariants()]


@pytest.mark.django_db
@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 10**9), st.integers(0, 10**6), st.integers(0, 3)), min_size=1, max_size=8))
def test_any_sequence_of_receipts_and_replays_keeps_the_books_exact(payments):
    with connection.cursor() as cur:
        cur.execute("DELETE FROM sponsorship_ledgerentry; DELETE FROM sponsorship_ledgertransaction;")
    expected = 0
    for i, (amount, fee, replays) in enumerate(payments):
        fee = min(fee, amount)
        for _ in range(replays + 1):
            receive(f"card_paid:h{i}", amount, fee)
        expected += amount
    assert ledger.natural_balance(Account.DONOR_FUNDS) == expected
    assert sum(ledger.trial_balance().values()) == 0
    assert ledger.check_invariants() == []
