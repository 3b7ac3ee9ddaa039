"""Response security headers and the logging filter that keeps secrets out of logs.

Django's SecurityMiddleware and XFrameOptionsMiddleware already send X-Content-Type-Options,
Referrer-Policy, Cross-Origin-Opener-Policy and X-Frame-Options (HSTS in production). This
adds the Content-Security-Policy and a Permissions-Policy.

The CSP allows the pages' own scripts and styles ('self', plus inline ones: the donate and pay
pages carry small inline scripts and one onchange handler) and Stripe.js from Stripe or, in
development and tests, from the localstripe emulator's origin (STRIPE_API_BASE).
"""

from __future__ import annotations

import logging
import re
from urllib.parse import urlsplit

from django.conf import settings

STRIPE_JS = "https://js.stripe.com"
STRIPE_ORIGINS = ("https://js.stripe.com", "https://hooks.stripe.com", "https://api.stripe.com")


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""


def content_security_policy() -> str:
    emulator = _origin(settings.STRIPE_API_BASE) if settings.STRIPE_API_BASE else ""
    stripe = " ".join(filter(None, (*STRIPE_ORIGINS, emulator)))
    directives = [
        "default-src 'self'",
        f"script-src 'self' 'unsafe-inline' {STRIPE_JS} {emulator}".strip(),
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "font-src 'self'",
        f"connect-src 'self' {stripe}",
        f"frame-src {stripe}",
        "frame-ancestors 'none'",
        "form-action 'self'",
        "base-uri 'self'",
        "object-src 'none'",
    ]
    return "; ".join(directives)


class SecurityHeadersMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        response.setdefault("Content-Security-Policy", content_security_policy())
        response.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=(self)")
        return response


# --- Path integers within the database's range -----------------------------------------------------

BIGINT_MAX = 2**63 - 1


class PathIntRangeMiddleware:
    """`<int:pk>` accepts any run of digits; one beyond PostgreSQL's bigint made the query fail
    with DataError (a 500, found by schemathesis on /matching/cards/<id>/). No row can have
    such an id, so the answer is 404, decided once here for every route."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_view(self, request, view_func, view_args, view_kwargs):
        if any(isinstance(v, int) and not -BIGINT_MAX <= v <= BIGINT_MAX for v in view_kwargs.values()):
            from django.http import Http404

            raise Http404("No such object.")
        return None


# --- Secrets never logged ------------------------------------------------------------------------

_SECRET_NAMES = (
    r"password|passwd|pwd|secret|token|api[_-]?key|authorization|client_secret|csrfmiddlewaretoken|sessionid"
)
_PATTERNS = [
    # Stripe keys and webhook secrets, wherever they appear.
    (re.compile(r"\b(sk|rk|pk)_(live|test)_[A-Za-z0-9]{4,}"), r"\1_\2_[REDACTED]"),
    (re.compile(r"\bwhsec_[A-Za-z0-9_]{4,}"), "whsec_[REDACTED]"),
    (re.compile(r"\b(seti|pi)_[A-Za-z0-9]+_secret_[A-Za-z0-9]+"), r"\1_[REDACTED]_secret"),
    # Authorization headers.
    (re.compile(r"(?i)\b(Basic|Bearer)\s+[A-Za-z0-9+/=._-]{6,}"), r"\1 [REDACTED]"),
    # name=value / "name": "value" / name: value pairs whose name says secret.
    (
        re.compile(rf"(?i)([\"']?(?:{_SECRET_NAMES})[\"']?\s*[:=]\s*[\"']?)([^\"'&\s,;}}]+)"),
        r"\1[REDACTED]",
    ),
]


def scrub(text: str) -> str:
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class SecretsFilter(logging.Filter):
    """Rewrites each record's message (arguments merged), exception text and stack so
    passwords, Stripe keys, webhook secrets and tokens never reach a handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken format string is still logged, unscrubbed args dropped
            message = str(record.msg)
        record.msg, record.args = scrub(message), ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = scrub(record.exc_text)
            record.exc_info = None  # the scrubbed text is what handlers print
        if record.stack_info:
            record.stack_info = scrub(record.stack_info)
        return True
