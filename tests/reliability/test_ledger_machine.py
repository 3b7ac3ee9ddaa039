"""Ledger invariants under random sequences of gifts, refunds, disputes, matching runs,
agency rejections and remittances (hypothesis stateful, real services). CI form: a few
hundred steps; `./chungtay manage benchmark ledger --steps 10000` is the full form."""

import os

from hypothesis.stateful import run_state_machine_as_test

from sponsorship.benchmarks.ledger import STATS, LedgerMachine, machine_settings

CI_EXAMPLES = int(os.environ.get("CHUNGTAY_LEDGER_MACHINE_EXAMPLES", "20"))
CI_STEPS = int(os.environ.get("CHUNGTAY_LEDGER_MACHINE_STEPS", "25"))


def test_every_invariant_holds_after_every_step_of_random_money_histories(db, monkeypatch):
    monkeypatch.setattr(LedgerMachine, "nested", True)
    STATS.clear()
    run_state_machine_as_test(LedgerMachine, settings=machine_settings(CI_STEPS, CI_EXAMPLES))
    from .procs import report

    report("ledger machine", steps=STATS["checks"], **{k: v for k, v in STATS.items() if k != "checks"})
    # The machine really moved money through every kind of step it has.
    assert STATS["checks"] >= CI_EXAMPLES * 10
    assert STATS["payment_intent.succeeded"] and STATS["match"]


def test_a_remittance_raises_no_ledger_alarm(db, make_user, ha_tinh):
    """Found by the machine: remitted_to_agency is credited by batch_mark_paid, and read as a
    debit account every remittance looked like a negative balance (a false LedgerAlarm)."""
    from sponsorship.enrollment.batches import batch_create, batch_mark_paid, batch_submit
    from sponsorship.matching.services import match_province
    from sponsorship.services.ledger import check_invariants, natural_balance
    from tests.matching.conftest import PERIOD, communes, make_gift, make_household

    commune = communes(ha_tinh, 1)[0]
    make_household(commune)
    make_gift(make_user("donor"), 379_080, locality=commune)
    run = match_province(province_id=ha_tinh.pk, period_start=PERIOD)
    assert run.cards_funded == 1
    batch = batch_create(locality=commune, product="hi_household", period=PERIOD)
    batch_submit(batch_id=batch.pk)
    batch_mark_paid(batch_id=batch.pk)
    assert natural_balance("remitted_to_agency") == run.money_allocated_vnd > 0
    assert check_invariants() == []


def test_a_card_rejected_after_its_batch_was_paid_takes_its_money_back_from_the_agency(db, make_user, ha_tinh):
    """Found by the machine: the rejection used to debit allocated_to_cards, which the
    remittance had already emptied, leaving that fund negative."""
    from sponsorship.card_models import CardStatus
    from sponsorship.enrollment.batches import batch_create, batch_mark_paid, batch_submit, card_reject_refund
    from sponsorship.matching.services import match_province
    from sponsorship.services.cards import card_transition
    from sponsorship.services.ledger import check_invariants, fund_balances, natural_balance
    from tests.matching.conftest import PERIOD, communes, make_gift, make_household

    commune = communes(ha_tinh, 1)[0]
    make_household(commune)
    gift = make_gift(make_user("donor"), 379_080, locality=commune)
    match_province(province_id=ha_tinh.pk, period_start=PERIOD)
    batch = batch_create(locality=commune, product="hi_household", period=PERIOD)
    batch_submit(batch_id=batch.pk)
    batch_mark_paid(batch_id=batch.pk)
    card = card_transition(card_id=batch.items.get().card_id, to=CardStatus.REJECTED, rejection_reason="x")
    card_reject_refund(card=card)
    card_reject_refund(card=card)  # idempotent
    assert natural_balance("remitted_to_agency") == 0
    assert fund_balances("allocated_to_cards").get(gift.fund_key, 0) == 0
    assert fund_balances("donor_funds")[gift.fund_key] == 379_080
    assert check_invariants() == []


def test_a_batch_paid_after_the_agency_rejected_one_of_its_cards_does_not_pay_for_that_card(db, make_user, ha_tinh):
    """Found by the benchmark form of the machine: the rejected card's money had gone back to
    the pool, and paying the batch took it out of allocated_to_cards a second time."""
    from sponsorship.card_models import CardStatus
    from sponsorship.enrollment.batches import batch_create, batch_mark_paid, batch_submit, card_reject_refund
    from sponsorship.matching.services import match_province
    from sponsorship.services.cards import card_transition
    from sponsorship.services.ledger import check_invariants, fund_balances, natural_balance
    from tests.matching.conftest import PERIOD, communes, make_gift, make_household

    commune = communes(ha_tinh, 1)[0]
    make_household(commune)
    make_household(commune)
    gift = make_gift(make_user("donor"), 2 * 379_080, locality=commune)
    run = match_province(province_id=ha_tinh.pk, period_start=PERIOD)
    assert run.cards_funded == 2
    share = run.money_allocated_vnd // 2
    batch = batch_create(locality=commune, product="hi_household", period=PERIOD)
    batch_submit(batch_id=batch.pk)
    first = batch.items.order_by("card_id").first().card_id
    card_reject_refund(card=card_transition(card_id=first, to=CardStatus.REJECTED, rejection_reason="x"))
    batch_mark_paid(batch_id=batch.pk)
    assert natural_balance("remitted_to_agency") == share
    assert fund_balances("allocated_to_cards").get(gift.fund_key, 0) == 0
    assert check_invariants() == []


def test_benchmark_ledger_prints_its_table_and_json_line(db, monkeypatch):
    monkeypatch.setattr(LedgerMachine, "nested", True)
    import io
    import json

    from django.core.management import call_command

    out = io.StringIO()
    call_command("benchmark", "ledger", "--steps", "20", "--steps-per-example", "10", stdout=out)
    figures = json.loads(out.getvalue().strip().splitlines()[-1])
    assert figures["benchmark"] == "ledger" and figures["steps"] >= 20 and figures["invariant_failures"] == 0


def test_a_payment_posted_while_the_checker_runs_raises_no_false_alarm(transactional_db, make_user, monkeypatch):
    """Found while load ran beside the ledger machine: check_invariants reads the ledger in
    several queries, and a payment committed between two of them made the funds equation
    look broken. It now reads one snapshot. Here a real payment (another connection) is
    committed exactly between the checker's queries."""
    import threading

    from django.db import connection

    from sponsorship.services import ledger

    from .data import card_gift

    donor = make_user("donor")
    card_gift(donor, 500_000)
    original = ledger.natural_balance
    posted = []

    def between(*args, **kwargs):
        if not posted:

            def pay():
                try:
                    posted.append(card_gift(donor, 700_000))
                finally:
                    connection.close()

            t = threading.Thread(target=pay)
            t.start()
            t.join()
        return original(*args, **kwargs)

    monkeypatch.setattr(ledger, "natural_balance", between)
    assert ledger.check_invariants() == []
    assert posted and posted[0].amount_received_vnd == 700_000  # the payment really landed mid-check
    monkeypatch.setattr(ledger, "natural_balance", original)
    assert ledger.check_invariants() == []
