"""Load: N concurrent signed-in donors (default 100) for D seconds (default 60) against a real
gunicorn (as `./chungtay up`: 2 workers × 4 threads unless --web-workers/--threads), a real
Celery worker and the Stripe emulator. Each donor loops: think 0.5–1.5 s, then browses the
home page, the sponsor page, the locality search, their dashboard, or gives (create a gift by
the API; one gift in four is a card gift set up and paid through the emulator, whose webhook
the worker applies). Prints p50, p99 and error rate per endpoint and overall
(goal: p99 ≤ 150 ms, no errors). The donors and their gifts are removed afterwards.

Needs the demo database (`./chungtay manage bootstrap`)."""

import asyncio
import os
import random
import secrets
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

from django.db import connection, transaction

from config.devrun import free_port

ROOT = Path(__file__).resolve().parents[2]
EMAIL = "bench-load-{}@chungtay.invalid"
SECRET = "whsec_bench_load"
SK = "sk_test_bench_load"
PK = "pk_test_bench_load"
GOAL_P99_MS = 150
FAILURES: list[str] = []


def add_arguments(parser):
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--web-workers", type=int, default=int(os.environ.get("WEB_CONCURRENCY", "2")))
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--think", type=float, default=1.0, help="mean think time between a donor's requests (s)")


def _users(n):
    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.utils.module_loading import import_string

    from donors.models import Role, User

    store = import_string(settings.SESSION_ENGINE + ".SessionStore")
    cookies = []
    for i in range(n):
        user = User.objects.filter(email=EMAIL.format(i)).first() or User.objects.create_user(
            EMAIL.format(i), None, role=Role.DONOR, full_name=f"Nhà hảo tâm {i}"
        )
        # Sessions made the way login makes them: the benchmark measures browsing, not PBKDF2.
        session = store()
        session[SESSION_KEY] = str(user.pk)
        session[BACKEND_SESSION_KEY] = settings.AUTHENTICATION_BACKENDS[0]  # a backend login would record
        session[HASH_SESSION_KEY] = user.get_session_auth_hash()
        session.create()
        csrf = secrets.token_hex(16)  # 32 characters: Django accepts a token it did not mint
        cookies.append({settings.SESSION_COOKIE_NAME: session.session_key, settings.CSRF_COOKIE_NAME: csrf})
    return cookies


def _cleanup(since=None):
    from donors.models import User

    users = list(User.objects.filter(email__startswith="bench-load-").values_list("pk", flat=True))
    with transaction.atomic(), connection.cursor() as cur:
        if users:
            ids = "(SELECT id FROM sponsorship_donation WHERE donor_id = ANY(%s))"
            cur.execute(
                "DELETE FROM sponsorship_ledgerentry WHERE transaction_id IN "
                f"(SELECT id FROM sponsorship_ledgertransaction WHERE donation_id IN {ids})",
                [users],
            )
            for table in ("ledgertransaction", "donationhistory", "discrepancy", "receipt", "refund", "dispute"):
                cur.execute(f"DELETE FROM sponsorship_{table} WHERE donation_id IN {ids}", [users])
            cur.execute("DELETE FROM sponsorship_donation WHERE donor_id = ANY(%s)", [users])
        if since is not None:
            cur.execute("DELETE FROM sponsorship_stripeevent WHERE received_at >= %s", [since])
    User.objects.filter(pk__in=users).delete()


LOG_DIR = Path(os.environ.get("TMPDIR", "/tmp"))


def _spawn(argv, env, name="proc"):
    """A child in its own process group; its output goes to <tmp>/chungtay-load-<name>.log."""
    log = open(LOG_DIR / f"chungtay-load-{name}.log", "w")  # noqa: SIM115 - the child owns it
    return subprocess.Popen(
        argv, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip


def _stop(procs):
    import signal

    for p in procs:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


async def _donor(n, base, stripe_base, cookies, localities, stats, deadline, think):
    import aiohttp

    jar = aiohttp.CookieJar(unsafe=True)
    jar.update_cookies(cookies, response_url=aiohttp.client.URL(base))
    csrf = next(v for k, v in cookies.items() if "csrf" in k)
    headers = {"X-CSRFToken": csrf, "Referer": base + "/", "Accept-Language": "vi"}
    rng = random.Random(n)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(cookie_jar=jar, headers=headers, timeout=timeout) as http:

        async def call(name, method, path, **kw):
            t0 = time.perf_counter()
            try:
                async with http.request(method, base + path, allow_redirects=False, **kw) as r:
                    body = await r.read()
                    ok = r.status < 400
                    what = r.status
            except (TimeoutError, aiohttp.ClientError) as exc:
                body, ok, what = str(exc).encode(), False, type(exc).__name__
            ms = (time.perf_counter() - t0) * 1000
            if not ok and len(FAILURES) < 20:
                FAILURES.append(f"{name} → {what}: {body[:300]!r}")
            if time.monotonic() < deadline:
                stats[name].append((ms, ok))
            return ok, body

        await asyncio.sleep(rng.uniform(0, think * 2))  # donors arrive over the first seconds
        while time.monotonic() < deadline:
            action = rng.choices(["home", "donate", "localities", "dashboard", "give"], [30, 20, 15, 15, 20])[0]
            if action == "home":
                await call("GET /", "GET", "/")
            elif action == "donate":
                await call("GET /donate/", "GET", "/donate/")
            elif action == "localities":
                q = rng.choice(["ha noi", "ha tinh", "thanh sen", "nghe an", "da nang"])
                await call("GET /api/localities/?q=", "GET", "/api/localities/", params={"q": q})
            elif action == "dashboard":
                await call("GET /donor/", "GET", "/donor/")
            else:
                card = rng.random() < 0.25
                payload = {"method": "card" if card else "bank", "amount_vnd": rng.choice([100_000, 379_080, 500_000])}
                payload["locality_id"] = rng.choice(localities)
                ok, body = await call("POST /api/donations/create/", "POST", "/api/donations/create/", json=payload)
                if card and ok:
                    import json

                    public_id = json.loads(body)["public_id"]
                    await call("POST card-setup", "POST", f"/api/donations/{public_id}/card-setup/")
                    async with http.post(  # what Stripe.js does in the browser (not our server)
                        f"{stripe_base}/v1/payment_methods",
                        auth=aiohttp.BasicAuth(SK, ""),
                        data={"type": "card", "card[number]": "4242424242424242", "card[exp_month]": "12",
                              "card[exp_year]": "2030", "card[cvc]": "123"},
                    ) as r:  # fmt: skip
                        pm = (await r.json())["id"]
                    await call(
                        "POST card-pay", "POST", f"/api/donations/{public_id}/card-pay/", json={"payment_method": pm}
                    )
            await asyncio.sleep(rng.uniform(think * 0.5, think * 1.5))


def _percentile(values, q):
    if not values:
        return 0.0
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def run(options, out) -> dict:
    from beneficiaries.models import Level, Locality, Member, Scheme
    from donors.models import User  # noqa: F401 - app registry ready
    from sponsorship.models import Donation

    bin_dir = Path(sys.executable).parent
    since = None
    _cleanup()
    procs = []
    try:
        from django.utils import timezone

        since = timezone.now()
        cookies = _users(options["users"])
        # Never unrestricted money (run it apart from `benchmark ledger`, which also uses
        # member-less provinces).
        provinces = Locality.objects.filter(scheme=Scheme.CURRENT, level=Level.PROVINCE)
        # Gifts to provinces with nobody registered: matching (started by each payment) finds no
        # need, so the demo's cards are untouched and the clean-up can delete every gift it made.
        registered = Member.objects.values_list("locality__province_id", flat=True).distinct()
        localities = list(provinces.exclude(pk__in=registered).values_list("pk", flat=True)[:10])
        port, stripe_port = free_port(), free_port()
        base, stripe_base = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{stripe_port}"
        env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "DJANGO_DEBUG": "false",
            "STRIPE_API_BASE": stripe_base,
            "STRIPE_SECRET_KEY": SK,
            "STRIPE_PUBLISHABLE_KEY": PK,
            "STRIPE_WEBHOOK_SECRET": SECRET,
            # One loopback address stands in for 100 donors: per-address limits would measure
            # the limiter, not the pages (config/ratelimit.py is tested in tests/hardening).
            "CHUNGTAY_RATELIMIT_ENABLED": "false",
        }
        procs.append(
            _spawn(
                [sys.executable, "-m", "config.stripe_emulator", "--port", str(stripe_port),
                 "--webhook-url", f"{base}/stripe/webhook/", "--webhook-secret", SECRET],
                env, "stripe",
            )
        )  # fmt: skip
        procs.append(
            _spawn(
                [str(bin_dir / "gunicorn"), "config.wsgi", "--bind", f"127.0.0.1:{port}",
                 "--workers", str(options["web_workers"]), "--threads", str(options["threads"]),
                 # Longer than a donor's think time: gunicorn's 2 s default closed connections a
                 # client was about to reuse (one POST failed with ECONNRESET in a 100-donor run).
                 "--keep-alive", "10"],
                env, "web",
            )
        )  # fmt: skip
        procs.append(
            _spawn(
                [str(bin_dir / "celery"), "-A", "config", "worker", "-l", "WARNING", "--concurrency", "2",
                 "-n", f"bench-load-{os.getpid()}@%h"],
                env, "worker",
            )
        )  # fmt: skip
        import requests

        for _ in range(300):
            try:
                requests.get(f"{base}/healthz", timeout=5)
                requests.get(f"{stripe_base}/v1/customers", auth=(SK, ""), timeout=5)
                break
            except requests.RequestException:
                time.sleep(0.2)
        for path in ("/", "/donate/", "/api/localities/?q=ha", "/healthz"):  # warm both web workers
            for _ in range(4):
                requests.get(base + path, timeout=30)
        out.write(f"{options['users']} donors for {options['seconds']:.0f} s against {base}…\n")
        stats = defaultdict(list)
        deadline = time.monotonic() + options["seconds"]

        async def main():
            await asyncio.gather(
                *(
                    _donor(i, base, stripe_base, c, localities, stats, deadline, options["think"])
                    for i, c in enumerate(cookies)
                )
            )

        t0 = time.perf_counter()
        asyncio.run(main())
        wall = time.perf_counter() - t0
        created = Donation.objects.filter(donor__email__startswith="bench-load-").count()
        card_paid = Donation.objects.filter(donor__email__startswith="bench-load-", status="succeeded").count()
        endpoints = {}
        for name, samples in sorted(stats.items()):
            ms = [m for m, _ in samples]
            endpoints[name] = {
                "requests": len(samples),
                "p50_ms": round(statistics.median(ms), 1),
                "p99_ms": round(_percentile(ms, 0.99), 1),
                "errors": sum(1 for _, ok in samples if not ok),
            }
        every = [s for samples in stats.values() for s in samples]
        ms = [m for m, _ in every]
        errors = sum(1 for _, ok in every if not ok)
        overall = {
            "requests": len(every),
            "requests_per_s": round(len(every) / options["seconds"], 1),
            "p50_ms": round(statistics.median(ms), 1) if ms else 0,
            "p99_ms": round(_percentile(ms, 0.99), 1),
            "errors": errors,
            "error_rate": round(errors / max(len(every), 1), 4),
        }
        return {
            "users": options["users"],
            "seconds": options["seconds"],
            "wall_s": round(wall, 1),
            "web": f"{options['web_workers']} workers × {options['threads']} threads",
            "think_s": options["think"],
            "overall": overall,
            "endpoints": endpoints,
            "gifts_created": created,
            "card_gifts_paid": card_paid,
            "goal_p99_ms": GOAL_P99_MS,
            "first_failures": FAILURES[:5],
            "goal_met": overall["p99_ms"] <= GOAL_P99_MS and errors == 0,
        }
    finally:
        _stop(procs)
        _cleanup(since)


def rows(figures: dict) -> list[tuple[str, str]]:
    o = figures["overall"]
    out = [
        ("donors / seconds / web", f"{figures['users']} / {figures['seconds']:.0f} / {figures['web']}"),
        ("overall", f"{o['requests']:,} req ({o['requests_per_s']}/s), p50 {o['p50_ms']} ms, p99 {o['p99_ms']} ms, "
                    f"errors {o['errors']} ({o['error_rate']:.2%})"),
    ]  # fmt: skip
    for name, e in figures["endpoints"].items():
        out.append(
            (f"  {name}", f"{e['requests']:,} req, p50 {e['p50_ms']} ms, p99 {e['p99_ms']} ms, errors {e['errors']}")
        )
    out.append(("gifts created / card gifts paid", f"{figures['gifts_created']} / {figures['card_gifts_paid']}"))
    out.append((f"goal p99 ≤ {GOAL_P99_MS} ms, 0 errors met", str(figures["goal_met"])))
    return out
