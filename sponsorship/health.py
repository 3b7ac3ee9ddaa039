"""What /healthz reports: each dependency checked on its own, with a short timeout."""

from __future__ import annotations

import time

from django.conf import settings
from django.core.cache import cache
from django.db import connection

BEAT_TICK_KEY = "health:beat:last_tick"


def _timed(check):
    t0 = time.monotonic()
    try:
        detail = check()
        ok = True
    except Exception as exc:  # noqa: BLE001 - a health check reports every failure
        ok, detail = False, f"{type(exc).__name__}: {exc}"
    return {"ok": ok, "ms": round((time.monotonic() - t0) * 1000, 1), "detail": detail}


def _database():
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return "ok"


def _redis():
    client = cache._cache.get_client(write=True)  # the same Redis as the broker
    client.ping()
    return "ok"


def _celery(timeout: float):
    from config.celery_app import app

    replies = app.control.ping(timeout=timeout)
    if not replies:
        raise RuntimeError(f"no Celery worker answered within {timeout}s")
    return f"{len(replies)} worker(s): " + ", ".join(sorted(name for r in replies for name in r))


def _beat():
    raw = cache.get(BEAT_TICK_KEY)
    if raw is None:
        raise RuntimeError("beat has not ticked yet")
    age = time.time() - float(raw)
    limit = 3 * settings.CELERY_BEAT_HEARTBEAT_SECONDS + 5
    if age > limit:
        raise RuntimeError(f"last tick {age:.0f}s ago (limit {limit}s)")
    return f"last tick {age:.0f}s ago"


def stripe_mode() -> str:
    key = settings.STRIPE_SECRET_KEY
    if settings.STRIPE_API_BASE:
        return "emulator"
    if key.startswith("sk_live_") or key.startswith("rk_live_"):
        return "live"
    if key:
        return "test"
    return "unconfigured"


def health_report(*, celery_timeout: float = 1.0) -> dict:
    checks = {
        "database": _timed(_database),
        "redis": _timed(_redis),
        "celery": _timed(lambda: _celery(celery_timeout)),
        "beat": _timed(_beat),
    }
    mode = stripe_mode()
    checks["stripe"] = {"ok": mode != "unconfigured", "ms": 0.0, "detail": mode}
    failing = sorted(name for name, check in checks.items() if not check["ok"])
    return {"status": "ok" if not failing else "fail", "failing": failing, "stripe_mode": mode, "checks": checks}


def record_beat_tick() -> float:
    now = time.time()
    cache.set(BEAT_TICK_KEY, now, timeout=None)
    return now
