"""Rate limits and the failed-login lockout, counted in Redis (the default cache).

Fixed-window counters: `cache.add` creates a key with the window as its expiry, `cache.incr`
is Redis' atomic INCR, so concurrent workers share one count without locks. Limits are
settings (`CHUNGTAY_RATELIMITS`, "count/seconds" per scope, env vars in .env.example);
tests set generous ones and the hardening suite sets tight ones explicitly.

Scopes in use: login (per client IP), signup (per IP), donation (creating gifts: per user, or IP
when anonymous), card (card payments: card-testing defence, per user or IP), webhook (Stripe
posts, per IP: a flood of forged deliveries is refused before signature checks).
"""

from __future__ import annotations

import functools
import hashlib
import logging
import time

from django.conf import settings
from django.contrib.auth.backends import ModelBackend
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse, JsonResponse
from django.utils.translation import gettext as _

logger = logging.getLogger("chungtay.security")


def _parse(rate: str) -> tuple[int, int]:
    count, _sep, seconds = str(rate).partition("/")
    return int(count), int(seconds or 60)


def client_ip(request) -> str:
    meta = request.META
    if getattr(settings, "CHUNGTAY_RATELIMIT_TRUST_FORWARDED", False) and meta.get("HTTP_X_FORWARDED_FOR"):
        # The rightmost entry is the one our (single) proxy appended; entries to its left are
        # whatever the client sent and could be forged to dodge the limits.
        return meta["HTTP_X_FORWARDED_FOR"].split(",")[-1].strip()
    return meta.get("REMOTE_ADDR", "") or "unknown"


def _key(*parts: str) -> str:
    digest = hashlib.sha256("|".join(parts).encode()).hexdigest()[:32]
    return f"{settings.CHUNGTAY_RATELIMIT_PREFIX}:{parts[0]}:{digest}"


def hit(scope: str, ident: str, *, rate: str | None = None) -> tuple[bool, int]:
    """Count one request of `ident` in `scope`. Returns (over the limit?, seconds to wait)."""
    if not settings.CHUNGTAY_RATELIMIT_ENABLED:
        return False, 0
    limit, window = _parse(rate or settings.CHUNGTAY_RATELIMITS[scope])
    now = int(time.time())
    start = now - now % window
    key = _key(scope, ident, str(start))
    try:
        cache.add(key, 0, timeout=window + 1)
        try:
            count = cache.incr(key)
        except ValueError:  # expired between add and incr
            cache.add(key, 1, timeout=window + 1)
            count = 1
    except Exception:  # noqa: BLE001 - Redis down: fail open (a limiter must not take the site down)
        logger.exception("rate limiter unavailable; %s not limited", scope)
        return False, 0
    return count > limit, start + window - now


def too_many(request, retry_after: int) -> HttpResponse:
    message = _("Too many requests. Please wait %(seconds)s seconds and try again.") % {"seconds": retry_after}
    if request.path.startswith("/api/") or request.path.startswith("/stripe/"):
        response = JsonResponse({"message": message, "code": "rate_limited", "extra": {}}, status=429)
    else:
        response = HttpResponse(message, status=429, content_type="text/plain; charset=utf-8")
    response["Retry-After"] = str(retry_after)
    return response


def ratelimit(scope: str, *, key: str = "ip", methods: tuple[str, ...] = ("POST",)):
    """View decorator: over the scope's limit → 429 with Retry-After. `key` is "ip" or
    "user" (the signed-in user's id, falling back to the IP)."""

    def decorate(view):
        @functools.wraps(view)
        def wrapped(request, *args, **kwargs):
            if request.method in methods:
                user = getattr(request, "user", None)
                if key == "user" and user is not None and user.is_authenticated:
                    ident = f"user:{user.pk}"
                else:
                    ident = f"ip:{client_ip(request)}"
                over, retry_after = hit(scope, ident)
                if over:
                    logger.warning("rate limit %s exceeded by %s on %s", scope, ident, request.path)
                    return too_many(request, retry_after)
            return view(request, *args, **kwargs)

        return wrapped

    return decorate


# --- Failed-login lockout -------------------------------------------------------------------------


def _lock_ident(username: str, ip: str) -> str:
    return f"{(username or '').strip().lower()}|{ip}"


def lockout_remaining(username: str, ip: str) -> int:
    """Seconds left of a lockout on this account from this IP (0 when not locked)."""
    try:
        until = cache.get(_key("lock", _lock_ident(username, ip)))
    except Exception:  # noqa: BLE001 - Redis down: no lockout rather than no login
        logger.exception("lockout store unavailable")
        return 0
    return max(0, int(until - time.time())) if until else 0


def record_failure(username: str, ip: str) -> bool:
    """Count a failed login; returns True when this failure locks the account for this IP."""
    failures = settings.CHUNGTAY_LOGIN_LOCKOUT_FAILURES
    seconds = settings.CHUNGTAY_LOGIN_LOCKOUT_SECONDS
    key = _key("loginfail", _lock_ident(username, ip))
    try:
        cache.add(key, 0, timeout=seconds)
        try:
            count = cache.incr(key)
        except ValueError:
            cache.add(key, 1, timeout=seconds)
            count = 1
    except Exception:  # noqa: BLE001 - Redis down: the failure is not counted
        logger.exception("lockout store unavailable")
        return False
    if count >= failures and not lockout_remaining(username, ip):
        cache.set(_key("lock", _lock_ident(username, ip)), time.time() + seconds, timeout=seconds)
        cache.delete(key)
        _remember_lockout(username, ip, seconds)
        # Operators see lockouts in the log (level WARNING, logger chungtay.security).
        logger.warning("login locked for %s from %s after %s failures (%s s)", username, ip, count, seconds)
        return True
    return False


RECENT_KEY_SUFFIX = "lockouts:recent"
RECENT_MAX = 200


def _recent_key() -> str:
    return f"{settings.CHUNGTAY_RATELIMIT_PREFIX}:{RECENT_KEY_SUFFIX}"


def _remember_lockout(username: str, ip: str, seconds: int) -> None:
    """Keep the latest lockouts (a day) for the admins' page. Read-modify-write is fine here:
    lockouts are rare, and a lost entry is still in the log."""
    try:
        recent = cache.get(_recent_key()) or []
        recent.insert(0, {"username": username, "ip": ip, "at": time.time(), "until": time.time() + seconds})
        cache.set(_recent_key(), recent[:RECENT_MAX], timeout=24 * 3600)
    except Exception:  # noqa: BLE001 - the log line is the record of last resort
        logger.exception("could not record the lockout for the admin page")


def recent_lockouts() -> list[dict]:
    """Lockouts of the last day, newest first, each with `remaining` seconds (0 = over)."""
    try:
        recent = cache.get(_recent_key()) or []
    except Exception:  # noqa: BLE001
        return []
    for item in recent:
        item["remaining"] = lockout_remaining(item["username"], item["ip"])
    return recent


def unlock(username: str, ip: str) -> None:
    cache.delete(_key("lock", _lock_ident(username, ip)))
    clear_failures(username, ip)


def clear_failures(username: str, ip: str) -> None:
    try:
        cache.delete(_key("loginfail", _lock_ident(username, ip)))
    except Exception:  # noqa: BLE001 - Redis down: nothing to clear that could be read
        logger.exception("lockout store unavailable")


class LockoutModelBackend(ModelBackend):
    """ModelBackend that refuses a locked account+IP before checking the password, counts
    failures and clears them on success. Covers the login page, the admin and API basic auth."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if username is None:
            username = kwargs.get(self.get_user_model_username_field(), "")
        if "\x00" in str(username or "") or "\x00" in str(password or ""):
            # PostgreSQL text cannot hold NUL: the lookup raised DataError, a 500 on any API
            # call with such a Basic header (found by schemathesis). No account has one.
            return None
        ip = client_ip(request) if request is not None else "none"
        if lockout_remaining(username, ip):
            raise PermissionDenied  # stops every backend: no password check while locked
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if user is None:
            record_failure(username, ip)
        else:
            clear_failures(username, ip)
        return user

    @staticmethod
    def get_user_model_username_field() -> str:
        from django.contrib.auth import get_user_model

        return get_user_model().USERNAME_FIELD


def login_view():
    """Django's LoginView with a form that says clearly when the account is locked, and the
    login rate limit per IP."""
    from django import forms
    from django.contrib.auth.forms import AuthenticationForm
    from django.contrib.auth.views import LoginView

    class LockoutAuthenticationForm(AuthenticationForm):
        locked = False

        def clean(self):
            username = self.cleaned_data.get("username", "")
            remaining = lockout_remaining(username, client_ip(self.request)) if self.request else 0
            if remaining:
                self.locked = True
                raise forms.ValidationError(
                    _("Too many failed sign-in attempts. This account is locked for %(minutes)s minutes.")
                    % {"minutes": max(1, (remaining + 59) // 60)},
                    code="locked",
                )
            return super().clean()

    return ratelimit("login")(LoginView.as_view(authentication_form=LockoutAuthenticationForm))


def lockouts_view(request):
    """Admins: the lockouts of the last day, with a button to lift one that is still active."""
    from datetime import UTC, datetime

    from django.contrib import messages
    from django.core.exceptions import PermissionDenied
    from django.shortcuts import redirect, render

    if not (request.user.is_authenticated and request.user.is_superuser):
        raise PermissionDenied
    if request.method == "POST":
        unlock(request.POST.get("username", ""), request.POST.get("ip", ""))
        logger.warning(
            "lockout lifted for %s from %s by %s", request.POST.get("username"), request.POST.get("ip"), request.user
        )
        messages.success(request, _("Lockout lifted."))
        return redirect("security-lockouts")
    rows = [dict(item, at=datetime.fromtimestamp(item["at"], tz=UTC)) for item in recent_lockouts()]
    return render(request, "security/lockouts.html", {"lockouts": rows})
