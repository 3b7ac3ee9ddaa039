"""Four matching workers, a webhook storm through gunicorn and a statement import at the
same time: the books and the cards equal those of a serial run of the same work (rolled back
first). `benchmark concurrency` runs it bigger (CHUNGTAY_RELIABILITY_SCALE)."""

import csv
import io
import os
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from django.db import connection

from config.devrun import free_port
from sponsorship import stripe_client, tasks

from .data import assert_no_double_allocation, card_gift, households, rolled_back, snapshot, succeeded_event
from .procs import BIN, ROOT, report, scale, wait_until, worker_env

pytestmark = pytest.mark.slow
SECRET = "whsec_reliability"


def _statement(pledges) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["date", "amount", "description", "bank reference", "counter-account"])
    for i, p in enumerate(pledges):
        writer.writerow(["28/11/2026", str(p.amount_vnd), f"ung ho {p.reference.lower()} chung tay", f"FT{i}", ""])
    return buf.getvalue().encode()


@pytest.fixture
def gunicorn(transactional_db, private_redis):
    env = worker_env(
        database=connection.settings_dict["NAME"], redis=private_redis, app_name="web", STRIPE_WEBHOOK_SECRET=SECRET
    )
    port = free_port()
    proc = subprocess.Popen(
        [str(BIN / "gunicorn"), "config.wsgi", "--bind", f"127.0.0.1:{port}", "--workers", "2", "--threads", "4"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"

    def up():
        try:
            return requests.get(f"{url}/healthz", timeout=5).status_code in (200, 503)
        except requests.RequestException:
            return False

    try:
        wait_until(up, 60, "gunicorn to answer", 0.2)
        yield url
    finally:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)


def test_four_workers_a_webhook_storm_and_a_statement_import_at_once_equal_a_serial_run(
    start_worker, publish, gunicorn, make_user, ha_tinh, ha_noi, settings
):
    from sponsorship.matching.models import MatchingRun
    from sponsorship.matching.services import match_province
    from sponsorship.models import BankStatementLine, StripeEvent
    from sponsorship.services import bank, stripe_events
    from sponsorship.services.donations import donation_create

    k = scale()
    provinces = [ha_tinh, ha_noi]
    for p in provinces:
        households(p, per_commune=4 * k, n_communes=2)
    donor = make_user("donor")
    finance = make_user("finance")
    for i in range(4 * k):  # money already cleared
        card_gift(donor, 379_080 * (1 + i % 2), locality=provinces[i % 2])
    storm = [
        donation_create(donor=donor, method="card", amount_vnd=150_000 + 1000 * i, locality=provinces[i % 2])[0]
        for i in range(12 * k)
    ]
    pledges = [
        donation_create(donor=donor, method="bank", amount_vnd=400_000 + 1000 * i, locality=provinces[i % 2])[0]
        for i in range(6 * k)
    ]
    events = [succeeded_event(d, fee=d.amount_vnd // 50) for d in storm]
    statement = _statement(pledges)

    def serial():
        for event in events:
            stripe_events.apply_event(event)
        bank.statement_import(name="serial.csv", content=statement, by=finance)
        bank.match_lines()
        for _ in range(2):
            for p in provinces:
                match_province(province_id=p.pk)
        return snapshot(provinces)

    truth = rolled_back(serial)
    assert truth["cards"], "the world must give the matcher something to do"

    for i in range(4):
        start_worker(f"w_conc_{i}", ready=False)
    for i in range(4):
        start_worker.workers[i].wait_ready()
    stop = threading.Event()
    published = []

    def matcher_beat():  # beat, impatient: a matching job per province every 100 ms
        while not stop.is_set():
            for p in provinces:
                publish(tasks.match_province, p.pk)
                published.append(p.pk)
            time.sleep(0.1)

    def webhook_storm():
        session = requests.Session()
        now = int(time.time())
        bodies = [__import__("json").dumps(e) for e in events]
        signed = [(b, stripe_client.sign_payload(b, SECRET, now)) for b in bodies for _ in range(2)]  # twice each

        def post(item):
            r = session.post(
                f"{gunicorn}/stripe/webhook/",
                data=item[0].encode(),
                headers={"Stripe-Signature": item[1], "Content-Type": "application/json"},
                timeout=30,
            )
            return r.status_code

        with ThreadPoolExecutor(8) as pool:
            return list(pool.map(post, signed))

    beat = threading.Thread(target=matcher_beat)
    t0 = time.monotonic()
    beat.start()
    try:
        with ThreadPoolExecutor(1) as pool:
            storm_future = pool.submit(webhook_storm)
            imported = bank.statement_import(name="concurrent.csv", content=statement, by=finance)
            publish(tasks.match_bank_lines, imported.pk)
            codes = storm_future.result()
        applied = StripeEvent.objects.filter(stripe_event_id__in=[e["id"] for e in events], status="processed")
        wait_until(lambda: applied.count() == len(events), 120, "the storm to be applied", 0.3)
        wait_until(
            lambda: not BankStatementLine.objects.filter(statement=imported, status="unmatched").exists(),
            120, "the statement to be matched", 0.3,
        )  # fmt: skip
    finally:
        stop.set()
        beat.join()
    # Beat's next tick after the work arrived: one more job per province, then quiet.
    done_before = MatchingRun.objects.filter(status="done").count()
    for p in provinces:
        publish(tasks.match_province, p.pk)
    wait_until(lambda: MatchingRun.objects.filter(status="done").count() >= done_before + 2, 120, "last tick", 0.3)
    wait_until(lambda: start_worker.redis.client().llen("celery") == 0, 120, "the queue to empty", 0.3)
    time.sleep(1)
    elapsed = time.monotonic() - t0
    after = snapshot(provinces)
    assert set(codes) == {200}
    for key in ("cards", "allocated_per_fund", "donor_funds", "allocated_to_cards", "trial_balance"):
        assert after[key] == truth[key], key
    assert_no_double_allocation()
    runs = MatchingRun.objects.filter(status="done").count()
    report(
        "concurrency: 4 workers + webhook storm + statement import",
        workers=4,
        webhook_deliveries=len(codes),
        statement_lines=len(pledges),
        matching_jobs_published=len(published) + len(provinces),
        matching_runs_done=runs,  # the others found their shard busy (advisory lock) and skipped
        cards=len(after["cards"]),
        allocated_vnd=sum(after["allocated_per_fund"].values()),
        equal_to_serial=True,
        seconds=round(elapsed, 1),
    )
