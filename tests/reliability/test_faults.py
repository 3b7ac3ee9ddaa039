"""Faults with real processes: a Celery worker SIGKILLed in the middle of matching and of
reconciliation, Redis restarted under load, a PostgreSQL connection terminated mid-task.
Each prints what it tried (`reliability | {...}`); `benchmark chaos` runs them bigger."""

import time

import pytest
from django.db.models import Count

from sponsorship import tasks
from sponsorship.matching.models import MatchingRun

from .data import (
    assert_no_double_allocation,
    card_gift,
    households,
    rolled_back,
    snapshot,
)
from .procs import backends, report, scale, wait_until

pytestmark = pytest.mark.slow


def _waiting_on_lock(admin_sql, name):
    with admin_sql.cursor() as cur:
        return [pid for pid, _state, wait in backends(cur, name) if wait == "Lock"]


def _matching_world(make_user, province, n):
    hhs = households(province, per_commune=2 * n, n_communes=2)
    donor = make_user("donor")
    for i in range(3 * n):
        card_gift(donor, 379_080 * (1 + i % 3), locality=province)
    return hhs


def _match_serially(province):
    from sponsorship.matching.services import match_province

    def serial():  # the default period, as the workers use
        match_province(province_id=province.pk)
        match_province(province_id=province.pk)
        return snapshot([province])

    return rolled_back(serial)


def test_a_worker_killed_mid_matching_leaves_nothing_half_done_and_the_rerun_completes(
    start_worker, publish, table_lock, admin_sql, make_user, ha_tinh
):
    _matching_world(make_user, ha_tinh, scale())
    serial = _match_serially(ha_tinh)
    assert serial["cards"], "the world must give the matcher something to do"

    w1 = start_worker("w_match_1")
    lock = table_lock("sponsorship_card")  # the matcher will wait at its first card insert
    publish(tasks.match_province, ha_tinh.pk)
    wait_until(lambda: _waiting_on_lock(admin_sql, "w_match_1"), 60, "the matcher to reach its card insert")
    t_kill = time.monotonic()
    w1.kill9()
    lock.release()
    with admin_sql.cursor() as cur:
        wait_until(lambda: not backends(cur, "w_match_1"), 30, "the dead worker's backend to go")
    half = snapshot([ha_tinh])
    assert half["cards"] == {} and half["allocation_rows"] == 0  # nothing committed by the killed run
    assert not MatchingRun.objects.filter(status="done").exists()

    start_worker("w_match_2")  # the message comes back after the visibility timeout
    wait_until(lambda: MatchingRun.objects.filter(status="done").exists(), 90, "the rerun to finish", 0.5)
    recovered_after = time.monotonic() - t_kill
    publish(tasks.match_province, ha_tinh.pk)  # a second run (beat's next tick) finds nothing left
    wait_until(lambda: MatchingRun.objects.filter(status="done").count() >= 2, 60, "the second run", 0.5)
    after = snapshot([ha_tinh])
    assert after["cards"] == serial["cards"]
    assert after["allocated_per_fund"] == serial["allocated_per_fund"]
    assert after["donor_funds"] == serial["donor_funds"]
    assert_no_double_allocation()
    report(
        "worker SIGKILL mid-matching",
        cards=len(after["cards"]),
        allocated_vnd=sum(after["allocated_per_fund"].values()),
        equal_to_serial=True,
        rerun_done_s=round(recovered_after, 1),
    )


def test_a_database_connection_dropped_mid_matching_is_retried_without_partial_writes(
    start_worker, publish, table_lock, admin_sql, make_user, ha_tinh
):
    _matching_world(make_user, ha_tinh, scale())
    serial = _match_serially(ha_tinh)
    start_worker("w_pgdrop")
    lock = table_lock("sponsorship_card")
    publish(tasks.match_province, ha_tinh.pk)
    pids = wait_until(lambda: _waiting_on_lock(admin_sql, "w_pgdrop"), 60, "the matcher to reach its card insert")
    admin_sql.execute("SELECT pg_terminate_backend(%s)", [pids[0]])
    lock.release()
    half = snapshot([ha_tinh])
    assert half["cards"] == {} and half["allocation_rows"] == 0
    wait_until(lambda: MatchingRun.objects.filter(status="done").exists(), 90, "the retried run to finish", 0.5)
    after = snapshot([ha_tinh])
    assert after["cards"] == serial["cards"]
    assert after["donor_funds"] == serial["donor_funds"]
    assert_no_double_allocation()
    report(
        "PostgreSQL backend terminated mid-matching",
        cards=len(after["cards"]),
        runs=dict(MatchingRun.objects.values_list("status").annotate(n=Count("id"))),
        equal_to_serial=True,
    )


def _pay_at_stripe(base, donation, number="4242424242424242"):
    """Stripe charges; nobody here applies the answer: only events (or the reconciler) will."""
    from sponsorship import stripe_client
    from tests.sponsorship.conftest import card_payment_method

    try:
        return stripe_client.create_and_confirm_payment_intent(
            amount_vnd=donation.amount_vnd,
            payment_method=card_payment_method(base, number),
            metadata={"donation_id": str(donation.pk)},
            idempotency_key=f"rel-{donation.pk}",
        )
    except stripe_client.CardError:
        return None


def _stripe_env(base, settings, **extra):
    return dict(
        STRIPE_API_BASE=base,
        STRIPE_SECRET_KEY=settings.STRIPE_SECRET_KEY,
        STRIPE_PUBLISHABLE_KEY=settings.STRIPE_PUBLISHABLE_KEY,
        STRIPE_WEBHOOK_SECRET=settings.STRIPE_WEBHOOK_SECRET,
        **extra,
    )


def test_a_worker_killed_mid_reconciliation_is_requeued_and_the_books_are_exact(
    start_worker, publish, admin_sql, stripe_emulator, make_user, settings
):
    import os
    import signal

    from sponsorship.models import Account, Donation, LedgerTransaction
    from sponsorship.services import ledger
    from sponsorship.services.donations import donation_create

    n = 8 * scale()
    donor = make_user("donor")
    gifts = [donation_create(donor=donor, method="card", amount_vnd=100_000 + i)[0] for i in range(n)]
    for g in gifts:
        _pay_at_stripe(stripe_emulator, g)
    ids = [g.pk for g in gifts]

    def paid():
        return Donation.objects.filter(pk__in=ids, status="succeeded").count()

    worker = start_worker("w_rec", **_stripe_env(stripe_emulator, settings, CHUNGTAY_STRIPE_RECONCILE_BATCH="2"))
    # The gift in the middle is row-locked before the reconciler starts: it repairs the gifts
    # it pages before that one and then waits for the lock, in the middle whatever order it
    # pages in. (Taking a table lock once the first pages were repaired raced the reconciler:
    # on a busy box it had sometimes repaired everything before the lock was in place.)
    import psycopg

    from .conftest import _conninfo

    lock = psycopg.connect(**_conninfo())
    lock.execute("SELECT 1 FROM sponsorship_donation WHERE id = %s FOR UPDATE", [ids[n // 2]])
    publish(tasks.stripe_reconcile)
    try:
        wait_until(lambda: _waiting_on_lock(admin_sql, "w_rec"), 60, "the reconciler to reach the locked gift")
    except AssertionError:
        lock.rollback()
        lock.close()
        raise
    at_kill = paid()
    assert 0 < at_kill < n  # really in the middle
    # The OOM killer's way: the pool process dies, the worker's main process lives and, with
    # acks_late + reject_on_worker_lost, puts the message back at once.
    for pid in worker.children():
        os.kill(pid, signal.SIGKILL)
    lock.rollback()
    lock.close()
    wait_until(lambda: paid() == n, 90, "every payment to be repaired", 0.5)
    assert "WorkerLostError" in worker.output() or "exited with 'signal 9" in worker.output()
    assert LedgerTransaction.objects.filter(kind="card_paid", donation_id__in=ids).count() == n
    assert ledger.natural_balance(Account.DONOR_FUNDS) == sum(g.amount_vnd for g in gifts)
    assert_no_double_allocation()
    report("worker pool process SIGKILL mid-reconciliation", payments=n, repaired_before_kill=at_kill, exact=True)


def test_redis_restarted_during_a_run_the_tasks_resume_and_money_moves_once(
    start_worker, publish, table_lock, admin_sql, private_redis, make_user
):
    from sponsorship.models import Account, Donation, LedgerTransaction
    from sponsorship.services import ledger, stripe_events
    from sponsorship.services.donations import donation_create

    from .data import succeeded_event

    n = 20 * scale()
    donor = make_user("donor")
    gifts = [donation_create(donor=donor, method="card", amount_vnd=200_000 + i)[0] for i in range(n)]
    rows = [stripe_events.store_event(succeeded_event(g), source="webhook")[0] for g in gifts]
    start_worker("w_redis", concurrency=2)
    lock = table_lock("sponsorship_ledgertransaction")
    for row in rows[: n // 2]:
        publish(tasks.process_stripe_event, row)
    wait_until(lambda: len(_waiting_on_lock(admin_sql, "w_redis")) == 2, 60, "two tasks in flight")
    queued = private_redis.client().llen("celery")
    private_redis.restart(down_seconds=2)  # in flight: 2 tasks; queued: the rest of the first half
    for row in rows[n // 2 :]:
        publish(tasks.process_stripe_event, row)  # published after the restart
    lock.release()
    ids = [g.pk for g in gifts]
    wait_until(lambda: Donation.objects.filter(pk__in=ids, status="succeeded").count() == n, 120, "all tasks", 0.5)
    time.sleep(6)  # redelivered messages of the in-flight tasks (visibility timeout) run again: harmless
    assert LedgerTransaction.objects.filter(kind="card_paid", donation_id__in=ids).count() == n
    assert ledger.natural_balance(Account.DONOR_FUNDS) == sum(g.amount_vnd for g in gifts)
    assert_no_double_allocation()
    report("Redis restarted mid-run", tasks=n, in_flight_at_restart=2, queued_at_restart=queued, lost=0, doubled=0)


def test_webhooks_duplicated_ten_times_reordered_and_dropped_then_reconciled_leave_the_ledger_exact(
    stripe_emulator, client, make_user, settings
):
    """Stripe's events (payments from the emulator; refunds and disputes as Stripe sends them)
    delivered ten times each, shuffled, a third of the emulator's dropped; beat's inbox drain
    and the reconciler then run. The books must equal what Stripe says happened."""
    import random

    from sponsorship import stripe_client
    from sponsorship.models import Account, LedgerTransaction, StripeEvent
    from sponsorship.services import ledger
    from sponsorship.services.donations import donation_create
    from tests.sponsorship.conftest import signed_event
    from tests.sponsorship.test_webhooks import charge_refunded_event, dispute_event

    rng = random.Random(8)
    n = 9 * scale()
    donor = make_user("donor")
    gifts = [donation_create(donor=donor, method="card", amount_vnd=300_000 + 1000 * i)[0] for i in range(n)]
    truth = {}
    for i, g in enumerate(gifts):
        declined = i % 7 == 3
        _pay_at_stripe(stripe_emulator, g, "4000000000000341" if declined else "4242424242424242")
        truth[g.pk] = 0 if declined else g.amount_vnd
    stripe_side, cursor = [], ""
    while True:
        page, more = stripe_client.list_events(created_gte=0, starting_after=cursor, limit=100)
        stripe_side += page
        if not more or not page:
            break
        cursor = page[-1]["id"]
    # What the emulator cannot send: a partial refund, a lost and a won dispute.
    paid = [g for g in gifts if truth[g.pk]]
    extra = []
    r, lost, won = paid[0], paid[1], paid[2]
    for g in (r, lost, won):
        pi = next(e for e in stripe_side if e["data"]["object"].get("metadata", {}).get("donation_id") == str(g.pk))
        g.pi_id = pi["data"]["object"]["id"]
    refund_ev = charge_refunded_event(r, evt_id="evt_rel_refund", amount_refunded=100_000)
    refund_ev["data"]["object"]["payment_intent"] = r.pi_id
    truth[r.pk] -= 100_000
    for g, status, evt in ((lost, "lost", "evt_rel_dp_lost"), (won, "won", "evt_rel_dp_won")):
        for etype, st, suffix in (
            ("charge.dispute.created", "needs_response", "a"),
            ("charge.dispute.closed", status, "b"),
        ):
            ev = dispute_event(g, evt_id=f"{evt}_{suffix}", etype=etype, status=st)
            ev["data"]["object"]["payment_intent"] = g.pi_id
            ev["data"]["object"]["charge"] = "ch_not_known_here"  # found by its PaymentIntent
            extra.append(ev)
    truth[lost.pk] = 0
    extra.append(refund_ev)
    dropped = set(e["id"] for e in rng.sample(stripe_side, len(stripe_side) // 3))
    deliveries = [e for e in stripe_side + extra if e["id"] not in dropped for _ in range(10)]
    rng.shuffle(deliveries)
    for event in deliveries:
        body, sig = signed_event(event, settings.STRIPE_WEBHOOK_SECRET)
        response = client.post(
            "/stripe/webhook/", data=body, content_type="application/json", HTTP_STRIPE_SIGNATURE=sig
        )
        assert response.status_code == 200
    tasks.drain_stripe_webhooks.apply()  # what the published drain does
    tasks.drain_stripe_inbox.apply()  # beat: events that failed (a dispute before its payment)
    missing_before = sum(1 for e in stripe_side if e["id"] in dropped and e["type"] == "payment_intent.succeeded")
    tasks.stripe_reconcile.apply()
    tasks.drain_stripe_inbox.apply()
    for g in gifts:
        g.refresh_from_db()
        funds = -sum(
            e.amount
            for t in LedgerTransaction.objects.filter(donation=g).prefetch_related("entries")
            for e in t.entries.all()
            if e.account == Account.DONOR_FUNDS
        )
        assert funds == truth[g.pk], (g.pk, funds, truth[g.pk])
    assert ledger.natural_balance(Account.DONOR_FUNDS) == sum(truth.values())
    assert StripeEvent.objects.count() == len(stripe_side) + len(extra)  # each stored once
    assert StripeEvent.objects.exclude(status="processed").count() == 0
    assert ledger.check_invariants() == []
    report(
        "webhooks ×10, shuffled, a third dropped, then reconciled",
        events=len(stripe_side) + len(extra),
        deliveries=len(deliveries),
        dropped=len(dropped),
        payments_missing_before_reconcile=missing_before,
        ledger_exact=True,
    )
