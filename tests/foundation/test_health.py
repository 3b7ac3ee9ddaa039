import json

import pytest
from django.core.cache import cache

from sponsorship import health
from sponsorship.tasks import beat_heartbeat


def test_healthz_is_503_and_names_what_is_down(client, db, settings):
    cache.delete(health.BEAT_TICK_KEY)
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "fail"
    # Database and Redis are up in tests; no Celery worker or beat runs inside the test
    # process, so the ping really times out.
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["redis"]["ok"] is True
    assert {"celery", "beat"} <= set(body["failing"])
    assert "no Celery worker answered" in body["checks"]["celery"]["detail"]


def test_a_beat_tick_turns_the_beat_check_green(db):
    cache.delete(health.BEAT_TICK_KEY)
    assert health.health_report(celery_timeout=0.1)["checks"]["beat"]["ok"] is False
    beat_heartbeat.apply()
    assert health.health_report(celery_timeout=0.1)["checks"]["beat"]["ok"] is True


def test_a_stale_tick_is_reported(db, settings):
    import time

    cache.set(health.BEAT_TICK_KEY, time.time() - 3600)
    check = health.health_report(celery_timeout=0.1)["checks"]["beat"]
    assert check["ok"] is False and "limit" in check["detail"]


def test_a_dead_database_is_reported_by_name(db, monkeypatch):
    def broken():
        raise ConnectionError("database unreachable")

    monkeypatch.setattr(health, "_database", broken)
    report = health.health_report(celery_timeout=0.1)
    assert "database" in report["failing"]
    assert "unreachable" in report["checks"]["database"]["detail"]


@pytest.mark.parametrize(
    ("key", "base", "mode"),
    [
        ("sk_test_x", "http://127.0.0.1:8420", "emulator"),
        ("sk_test_x", "", "test"),
        ("sk_live_x", "", "live"),
        ("", "", "unconfigured"),
    ],
)
def test_stripe_mode_follows_the_configuration(settings, key, base, mode):
    settings.STRIPE_SECRET_KEY = key
    settings.STRIPE_API_BASE = base
    assert health.stripe_mode() == mode


def test_healthz_body_is_json_with_every_check(client, db):
    body = json.loads(client.get("/healthz").content)
    assert set(body["checks"]) == {"database", "redis", "celery", "beat", "stripe"}
