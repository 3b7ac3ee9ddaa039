"""Faults with real processes: a Celery worker SIGKILLed in the middle of matching and of
reconciliation, Redis restarted under load, a PostgreSQL connection terminated mid-task.
Each prints what it tried (`reliability | {...}`); `benchmark chaos` runs them bigger."""

import time

import pytest

from sponsorship import tasks
from sponsorship.matching.models import MatchingRun

from .data import (
    PERIOD,
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

    def serial():
        match_province(province_id=province.pk, period_start=PERIOD)
        match_province(province_id=province.pk, period_start=PERIOD)
        return snapshot([province])

    return rolled_back(serial)


@pytest.fixture
def period(settings, monkeypatch):
    # Workers use the default period (first day of next month); so does the serial truth.
    from sponsorship.matching.services import current_period_start

    monkeypatch.setattr("tests.reliability.test_faults.PERIOD", current_period_start())
    return current_period_start()


def test_a_worker_killed_mid_matching_leaves_nothing_half_done_and_the_rerun_completes(
    start_worker, publish, table_lock, admin_sql, make_user, ha_tinh, period
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
    start_worker, publish, table_lock, admin_sql, make_user, ha_tinh, period
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
        runs=dict(MatchingRun.objects.values_list("status").annotate(n=__import__("django").db.models.Count("id"))),
        equal_to_serial=True,
    )
