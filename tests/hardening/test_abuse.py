"""Abuse: rate limits (login, sign-up, giving by form and API, card payments, the Stripe
webhook), the failed-login lockout, CSRF on every route, security headers, secrets kept out of
logs, and the audit trail of who viewed personal data."""

from __future__ import annotations

import io
import json
import logging
import uuid

import pytest
from django.test import Client
from django.urls import reverse

from beneficiaries.models import PersonalDataView
from config.security import SecretsFilter, scrub
from donors.models import Role, User

from .routes import all_routes
from .world import PASSWORD, build_world


@pytest.fixture
def limits(settings):
    """Tight limits under a fresh key prefix (counters of other runs do not count). The
    windows are fixed and aligned (ratelimit.hit): the tests use a day, so that a burst on a
    slow machine never straddles a window's end (with 60 s windows it sometimes did)."""

    def set_limits(**rates):
        settings.CHUNGTAY_RATELIMIT_PREFIX = f"rl-test-{uuid.uuid4().hex[:8]}"
        settings.CHUNGTAY_RATELIMITS = {**settings.CHUNGTAY_RATELIMITS, **rates}

    set_limits()
    return set_limits


def _login_post(client, email, password, ip="10.0.0.1"):
    return client.post(
        reverse("login"), {"username": email, "password": password}, REMOTE_ADDR=ip, HTTP_ACCEPT_LANGUAGE="en"
    )


def _burst(send, limit):
    """Send limit+1 requests; returns the status codes."""
    return [send(i).status_code for i in range(limit + 1)]


@pytest.mark.django_db
def test_login_is_rate_limited_per_ip(limits, report):
    limits(login="3/86400")
    client = Client()
    codes = _burst(lambda i: _login_post(client, f"nobody{i}@x.test", "wrong"), 3)
    assert codes[:3] == [200, 200, 200] and codes[3] == 429, codes
    # Another address is not affected.
    assert _login_post(client, "nobody@x.test", "wrong", ip="10.0.0.2").status_code == 200
    report.add("abuse", rate_limits_checked=1)


@pytest.mark.django_db
def test_signup_is_rate_limited(limits, report):
    limits(signup="2/86400")
    client = Client()
    codes = _burst(lambda i: client.post(reverse("donor-signup"), {"email": f"s{i}@x.test"}), 2)
    assert codes[2] == 429 and 429 not in codes[:2], codes
    report.add("abuse", rate_limits_checked=1)


@pytest.mark.django_db
def test_giving_is_rate_limited_by_form_and_api(limits, make_user, report):
    limits(donation="2/86400")
    donor = make_user(Role.DONOR)
    client = Client()
    client.force_login(donor)
    form = _burst(lambda i: client.post(reverse("donate"), {"method": "bank", "amount_vnd": 100_000}), 2)
    assert form[2] == 429 and 429 not in form[:2], form
    # The same donor's budget is shared with the API: it is spent already.
    api = client.post(
        reverse("api-donation-create"),
        data=json.dumps({"method": "bank", "amount_vnd": 100_000}),
        content_type="application/json",
    )
    assert api.status_code == 429 and api.json()["code"] == "rate_limited" and int(api["Retry-After"]) > 0
    # A second donor has a budget of their own.
    other = Client()
    other.force_login(make_user(Role.DONOR))
    ok = other.post(
        reverse("api-donation-create"),
        data=json.dumps({"method": "bank", "amount_vnd": 100_000}),
        content_type="application/json",
    )
    assert ok.status_code == 201, ok.content
    report.add("abuse", rate_limits_checked=2)


@pytest.mark.django_db
def test_card_payment_attempts_are_limited(limits, report):
    """Card testing: many card attempts on one account are cut off before Stripe is called."""
    limits(card="2/86400")
    world = build_world()
    client = Client()
    client.force_login(world.users["donor_a"])
    url = reverse("api-card-pay", kwargs={"public_id": world.gift.public_id})
    codes = _burst(lambda i: client.post(url, {"payment_method": f"pm_{i}"}), 2)
    assert codes[2] == 429 and 429 not in codes[:2], codes  # the first two: 400, bank gift
    report.add("abuse", rate_limits_checked=1)


@pytest.mark.django_db
def test_webhook_is_rate_limited_before_signature_work(limits, report):
    limits(webhook="3/86400")
    client = Client()
    codes = _burst(lambda i: client.post(reverse("stripe-webhook"), data=b"{}", content_type="application/json"), 3)
    assert codes == [400, 400, 400, 429], codes
    report.add("abuse", rate_limits_checked=1)


@pytest.mark.django_db
def test_repeated_failed_logins_lock_the_account_for_that_ip(limits, settings, make_user, caplog, report):
    settings.CHUNGTAY_LOGIN_LOCKOUT_FAILURES = 3
    settings.CHUNGTAY_LOGIN_LOCKOUT_SECONDS = 900
    user = User.objects.create_user("victim@x.test", PASSWORD, role=Role.DONOR)
    client = Client()
    with caplog.at_level(logging.WARNING, logger="chungtay.security"):
        for _ in range(3):
            assert _login_post(client, user.email, "wrong-guess").status_code == 200
    assert any("login locked" in r.getMessage() and user.email in r.getMessage() for r in caplog.records)

    # The right password from the same address is refused, with a clear message.
    locked = _login_post(client, user.email, PASSWORD)
    assert locked.status_code == 200 and "_auth_user_id" not in client.session
    assert "locked for 15 minutes" in locked.content.decode()
    # So is HTTP basic auth on the API from that address.
    api = Client().get(reverse("api-me"), HTTP_AUTHORIZATION=_basic(user.email, PASSWORD), REMOTE_ADDR="10.0.0.1")
    assert api.status_code in (401, 403)
    # The owner, from elsewhere, is not locked out.
    elsewhere = Client()
    assert _login_post(elsewhere, user.email, PASSWORD, ip="10.9.9.9").status_code == 302
    # Admins see the lockout and can lift it; then the right password works again.
    admin = Client()
    admin.force_login(User.objects.create_superuser("root@x.test", PASSWORD))
    page = admin.get(reverse("security-lockouts"), HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert user.email in page and "10.0.0.1" in page and "Lift" in page
    admin.post(reverse("security-lockouts"), {"username": user.email, "ip": "10.0.0.1"})
    assert _login_post(client, user.email, PASSWORD).status_code == 302
    report.add("abuse", lockout_checks=5)


def _basic(email, password):
    import base64

    return "Basic " + base64.b64encode(f"{email}:{password}".encode()).decode()


CSRF_EXEMPT = {"stripe-webhook": "Stripe signs its deliveries (Stripe-Signature), there is no cookie"}


@pytest.mark.django_db
def test_every_route_refuses_a_post_without_csrf_token(report):
    """Signed in (a session cookie is what CSRF protects), a POST without the token is 403 on
    every route — pages through Django's middleware, the API through DRF's session auth."""
    world = build_world()
    from .access_matrix import MATRIX

    kwargs = {row.name: row.kwargs for row in MATRIX if row.kwargs}
    client = Client(enforce_csrf_checks=True)
    client.force_login(world.users["admin"])
    checked, failures = 0, []
    for name in sorted(all_routes()):
        if name in CSRF_EXEMPT or name == "admin/*":
            continue
        url = reverse(name, kwargs=kwargs[name](world) if name in kwargs else None)
        response = client.post(url, {"x": "1"})
        checked += 1
        if response.status_code != 403:
            failures.append(f"{name}: {response.status_code}")
    # The admin's login form too (the one admin/* row).
    assert Client(enforce_csrf_checks=True).post(reverse("admin:login"), {}).status_code == 403
    checked += 1
    report.add("abuse", csrf_routes_checked=checked)
    assert not failures, failures


@pytest.mark.django_db
def test_security_headers(settings, report):
    settings.STRIPE_API_BASE = "http://127.0.0.1:8420"
    response = Client().get(reverse("home"))
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["X-Frame-Options"] == "DENY"
    csp = response["Content-Security-Policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["frame-ancestors"] == "'none'"
    assert "'self'" in directives["script-src"]
    assert "https://js.stripe.com" in directives["script-src"]
    assert "http://127.0.0.1:8420" in directives["script-src"]  # the emulator's Stripe.js
    assert "http://127.0.0.1:8420" in directives["connect-src"]
    assert directives["object-src"] == "'none'"
    report.add("abuse", header_checks=7)


def test_production_settings_send_hsts():
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings.production",
        DJANGO_SECRET_KEY="y" * 20 + "a-long-random-production-secret-key-0123456789",
        DJANGO_ALLOWED_HOSTS="chungtay.example.org",
        STRIPE_SECRET_KEY="sk_live_dummy",
        STRIPE_PUBLISHABLE_KEY="pk_live_dummy",
        STRIPE_WEBHOOK_SECRET="whsec_dummy",
    )
    code = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.SECURE_HSTS_SECONDS, s.SECURE_SSL_REDIRECT, s.SESSION_COOKIE_SECURE, "
        "'config.security.SecurityHeadersMiddleware' in s.MIDDLEWARE)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[2], env=env, capture_output=True, text=True
    )
    hsts, redirect, secure_cookie, csp = out.stdout.split()
    assert int(hsts) >= 31536000 and redirect == secure_cookie == csp == "True", out.stderr


SECRETS = [
    "hunter2-Correct-Horse",
    "sk_test_51AbCdEfGhIjKlMn",
    "sk_live_51ZyXwVuTsRq",
    "whsec_9f8e7d6c5b4a",
    "pi_3Abc_secret_XyZ987",
    "dG9rZW4tdmFsdWUtMTIz",
]


def test_secrets_never_reach_the_log_output(report):
    """Through the real configured console handler: a failed login, an exception carrying a
    Stripe key, a request-shaped record with a password and an Authorization header."""
    handler = next(h for h in logging.getLogger().handlers if any(isinstance(f, SecretsFilter) for f in h.filters))
    buffer = io.StringIO()
    old = handler.setStream(buffer)
    try:
        log = logging.getLogger("chungtay.test.secrets")
        log.warning("login failed for an@x.vn password=%s", SECRETS[0])
        log.info("stripe call", extra={})
        log.info("POST /accounts/login/ body=%s", {"username": "an@x.vn", "password": SECRETS[0]})
        try:
            raise RuntimeError(f"Stripe said no with key {SECRETS[1]} (webhook {SECRETS[3]})")
        except RuntimeError:
            log.exception("payment failed, client_secret %s", SECRETS[4])
        logging.getLogger("django.request").error(
            "Internal Server Error: /api/accounts/me/ Authorization: Basic %s; api_key=%s", SECRETS[5], SECRETS[2]
        )
    finally:
        handler.setStream(old)
    output = buffer.getvalue()
    assert "login failed" in output and "Internal Server Error" in output and "RuntimeError" in output
    leaked = [s for s in SECRETS if s in output]
    assert not leaked, output
    assert output.count("[REDACTED]") >= len(SECRETS)
    report.add("abuse", secret_kinds_scrubbed=len(SECRETS))


def test_scrub_leaves_ordinary_text_alone():
    text = "Gift CT12345 of 500000 VND matched to card 77 in Phường Thành Sen"
    assert scrub(text) == text


@pytest.mark.django_db
def test_personal_data_views_are_listed_for_admins(report):
    """Each unmasked view adds a row (the access matrix counts them); the admin lists them."""
    world = build_world()
    officer = Client()
    officer.force_login(world.users["officer_x"])
    before = PersonalDataView.objects.count()
    officer.get(reverse("registry-member", kwargs={"pk": world.member.pk}))
    officer.get(reverse("api-registry-member", kwargs={"pk": world.member.pk}))
    assert PersonalDataView.objects.count() == before + 2
    admin = Client()
    admin.force_login(world.users["admin"])
    page = admin.get(reverse("admin:beneficiaries_personaldataview_changelist"))
    assert page.status_code == 200
    assert world.users["officer_x"].email in page.content.decode() or "officer.x" in page.content.decode()
    # Other staff cannot read the trail.
    reviewer = Client()
    reviewer.force_login(world.users["reviewer_x"])
    assert reviewer.get(reverse("admin:beneficiaries_personaldataview_changelist")).status_code == 302
    report.add("abuse", audit_checks=1)


@pytest.mark.django_db
def test_behind_the_proxy_the_appended_address_is_the_client(limits, settings):
    """Only the rightmost X-Forwarded-For entry (appended by our proxy) counts: a client that
    sends its own header cannot rotate addresses to dodge the login limit."""
    limits(login="2/86400")
    settings.CHUNGTAY_RATELIMIT_TRUST_FORWARDED = True
    client = Client()
    codes = [
        client.post(
            reverse("login"),
            {"username": "x@x.test", "password": "no"},
            REMOTE_ADDR="10.0.0.254",
            HTTP_X_FORWARDED_FOR=f"198.51.100.{i}, 203.0.113.7",
        ).status_code
        for i in range(3)
    ]
    assert codes == [200, 200, 429], codes


@pytest.mark.django_db
def test_the_limiter_fails_open_when_redis_is_unreachable(limits, settings, caplog):
    """A rate limiter must not take the site down with it: with the cache unreachable, logins
    go through (and the outage is logged)."""
    limits(login="1/86400")
    # Changing CACHES through the settings fixture resets Django's cache handler.
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",  # nothing listens there
            "OPTIONS": {"socket_connect_timeout": 0.2},
        }
    }
    with caplog.at_level(logging.ERROR, logger="chungtay.security"):
        for _ in range(3):
            assert _login_post(Client(), "x@x.test", "no").status_code == 200
    assert any("rate limiter unavailable" in r.getMessage() for r in caplog.records)
