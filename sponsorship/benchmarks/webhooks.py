"""Webhooks end to end: N signed payment_intent.succeeded events posted to a real gunicorn
(2 workers × 4 threads, as `./chungtay up`) and applied by a real Celery worker
(concurrency 2); events/s from the first POST to the last applied event (goal: 500/s).
Every tenth event is delivered twice. Checks 0 lost and 0 duplicated. Cleans up."""

import http.client
import json
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests
from django.db import connection, transaction

from config.devrun import free_port

BENCH_EMAIL = "bench-webhooks@chungtay.invalid"
SECRET = "whsec_bench_webhooks"
ROOT = Path(__file__).resolve().parents[2]


def add_arguments(parser):
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--clients", type=int, default=16, help="concurrent HTTP senders")
    parser.add_argument("--timeout", type=float, default=600)


def _cleanup():
    from donors.models import User

    with transaction.atomic(), connection.cursor() as cur:
        cur.execute("DELETE FROM sponsorship_stripeevent WHERE stripe_event_id LIKE 'evt_bench_%%'")
        user = User.objects.filter(email=BENCH_EMAIL).first()
        if user is None:
            return
        ids = "(SELECT id FROM sponsorship_donation WHERE donor_id = %s)"
        cur.execute(
            "DELETE FROM sponsorship_ledgerentry WHERE transaction_id IN "
            f"(SELECT id FROM sponsorship_ledgertransaction WHERE donation_id IN {ids})",
            [user.pk],
        )
        for table in ("ledgertransaction", "donationhistory", "discrepancy", "receipt"):
            cur.execute(f"DELETE FROM sponsorship_{table} WHERE donation_id IN {ids}", [user.pk])
        cur.execute("DELETE FROM sponsorship_donation WHERE donor_id = %s", [user.pk])
        user.delete()


def _event(d, i: int) -> str:
    return json.dumps(
        {
            "id": f"evt_bench_{i}",
            "object": "event",
            "type": "payment_intent.succeeded",
            "created": int(time.time()),
            "data": {
                "object": {
                    "id": f"pi_bench_{d.pk}",
                    "object": "payment_intent",
                    "amount": d.amount_vnd,
                    "currency": "vnd",
                    "status": "succeeded",
                    "metadata": {"donation_id": str(d.pk)},
                    "latest_charge": {"id": f"ch_bench_{d.pk}", "balance_transaction": {"fee": 0}},
                }
            },
        }
    )


def run(options, out) -> dict:
    from donors.models import Role, User
    from sponsorship import stripe_client
    from sponsorship.models import Donation, LedgerTransaction, Method, StripeEvent
    from sponsorship.services.donations import fund_key, new_reference

    n = options["events"]
    _cleanup()
    user = User.objects.create_user(BENCH_EMAIL, None, role=Role.DONOR, full_name="benchmark")
    # Gifts to a province with nobody registered: the matching that each payment starts finds
    # no need, so no card is funded from them and the clean-up can delete every gift it made
    # (unrestricted gifts were sometimes allocated to the demo's members before it ran).
    from beneficiaries.models import Level, Locality, Member, Scheme

    registered = Member.objects.values_list("locality__province_id", flat=True).distinct()
    province = Locality.objects.filter(scheme=Scheme.CURRENT, level=Level.PROVINCE).exclude(pk__in=registered).first()
    province_id = province.pk if province else None
    donations = Donation.objects.bulk_create(
        [
            Donation(
                donor=user,
                method=Method.CARD,
                amount_vnd=379_080,
                appearance="named",
                reference=new_reference(),
                locality_id=province_id,
                fund_key=fund_key(locality_id=province_id),
            )
            for _ in range(n)
        ],
        batch_size=5000,
    )
    # The webhook's per-address limit (card-testing defence) would cap a loopback storm at its
    # quota; the benchmark measures the pipeline, so it runs without limits.
    env = {
        **os.environ,
        "STRIPE_WEBHOOK_SECRET": SECRET,
        "PYTHONUNBUFFERED": "1",
        "CHUNGTAY_RATELIMIT_ENABLED": "false",
    }
    port = free_port()
    bin_dir = Path(sys.executable).parent
    web = subprocess.Popen(
        [
            str(bin_dir / "gunicorn"),
            "config.wsgi",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            os.environ.get("WEB_CONCURRENCY", "2"),
            "--threads",
            os.environ.get("WEB_THREADS", "4"),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    worker = subprocess.Popen(
        [
            str(bin_dir / "celery"),
            "-A",
            "config",
            "worker",
            "-l",
            "WARNING",
            "--concurrency",
            "2",
            "-n",
            f"bench-{os.getpid()}@%h",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(200):
            try:
                requests.get(f"http://127.0.0.1:{port}/healthz", timeout=10)
                break
            except requests.RequestException:
                time.sleep(0.1)
        time.sleep(3)  # the worker connects to the broker
        payloads = []
        for i, d in enumerate(donations):
            body = _event(d, i)
            payloads.append(body)
            if i % 10 == 0:
                payloads.append(body)  # delivered twice
        now = int(time.time())
        signed = [(p, stripe_client.sign_payload(p, SECRET, now)) for p in payloads]
        local = threading.local()
        failures = []

        def send(item):
            # A plain keep-alive http.client connection per sender thread: `requests` costs
            # ~3x more CPU per POST, and the load generator shares the 2 cores with the
            # server and the workers it measures.
            status = 0
            for _attempt in range(3):  # Stripe retries a delivery that got no answer
                conn = getattr(local, "conn", None)
                if conn is None:
                    conn = local.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                try:
                    conn.request(
                        "POST",
                        "/stripe/webhook/",
                        body=item[0].encode(),
                        headers={"Stripe-Signature": item[1], "Content-Type": "application/json"},
                    )
                    r = conn.getresponse()
                    r.read()
                    status = r.status
                    break
                except (http.client.HTTPException, OSError):
                    conn.close()
                    local.conn = None
            if status != 200:
                failures.append(status)

        out.write(f"posting {len(signed):,} deliveries of {n:,} events…\n")
        t0 = time.perf_counter()
        with ThreadPoolExecutor(options["clients"]) as pool:
            list(pool.map(send, signed, chunksize=50))
        posted = time.perf_counter() - t0
        deadline = time.monotonic() + options["timeout"]
        done = 0
        while time.monotonic() < deadline:
            done = StripeEvent.objects.filter(stripe_event_id__startswith="evt_bench_", status="processed").count()
            if done >= n:
                break
            time.sleep(0.05)
        elapsed = time.perf_counter() - t0
        stored = StripeEvent.objects.filter(stripe_event_id__startswith="evt_bench_").count()
        posted_tx = LedgerTransaction.objects.filter(donation__donor=user, kind="card_paid").count()
        paid = Donation.objects.filter(donor=user, status="succeeded").count()
        return {
            "events": n,
            "deliveries": len(signed),
            "http_failures": len(failures),
            "stored": stored,
            "processed": done,
            "lost": n - paid,
            "duplicated": posted_tx - n,
            "post_events_per_s": round(len(signed) / posted, 1),
            "end_to_end_events_per_s": round(done / elapsed, 1),
            "goal_events_per_s": 500,
            "goal_met": done / elapsed >= 500 and paid == n and posted_tx == n,
        }
    finally:
        for proc in (web, worker):
            proc.terminate()
        for proc in (web, worker):
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        _cleanup()


def rows(figures: dict) -> list[tuple[str, str]]:
    return [
        ("events / deliveries", f"{figures['events']:,} / {figures['deliveries']:,}"),
        ("HTTP accept rate (deliveries/s)", f"{figures['post_events_per_s']:,.0f}"),
        ("end to end (events/s)", f"{figures['end_to_end_events_per_s']:,.0f}"),
        ("lost / duplicated", f"{figures['lost']} / {figures['duplicated']}"),
        ("goal ≥ 500 events/s met", str(figures["goal_met"])),
    ]
