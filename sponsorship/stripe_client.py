"""The only module that imports `stripe`. Everything else passes plain dicts around.

With STRIPE_API_BASE set (tests, offline demo) the SDK talks to the localstripe emulator,
which ignores idempotency keys: network retries are off there, or a retried create would
make a second object. Against real Stripe the SDK retries twice with our idempotency key."""

import functools
import json

import stripe
from django.conf import settings

CardError = stripe.CardError
StripeError = stripe.StripeError
InvalidRequestError = stripe.InvalidRequestError
SignatureVerificationError = stripe.SignatureVerificationError
TransientErrors = (stripe.APIConnectionError, stripe.RateLimitError)


@functools.cache
def _client(key: str, base: str) -> stripe.StripeClient:
    kwargs = {"max_network_retries": 0 if base else 2}
    if base:
        kwargs["base_addresses"] = {"api": base}
    return stripe.StripeClient(key, **kwargs)


def client() -> stripe.StripeClient:
    return _client(settings.STRIPE_SECRET_KEY, settings.STRIPE_API_BASE)


def _d(obj) -> dict:
    return obj.to_dict() if hasattr(obj, "to_dict") else dict(obj)


def create_setup_intent(*, metadata: dict, idempotency_key: str) -> dict:
    return _d(
        client().v1.setup_intents.create(
            params={"usage": "on_session", "payment_method_types": ["card"], "metadata": metadata},
            options={"idempotency_key": idempotency_key},
        )
    )


def create_and_confirm_payment_intent(
    *, amount_vnd: int, payment_method: str, metadata: dict, idempotency_key: str, return_url: str = ""
) -> dict:
    """Raises CardError on a decline. VND is zero-decimal: `amount` is đồng."""
    params = {
        "amount": amount_vnd,
        "currency": "vnd",
        "payment_method": payment_method,
        "payment_method_types": ["card"],
        "confirm": True,
        "metadata": metadata,
    }
    return _d(client().v1.payment_intents.create(params=params, options={"idempotency_key": idempotency_key}))


def retrieve_payment_intent(pi_id: str) -> dict:
    return _d(client().v1.payment_intents.retrieve(pi_id))


def retrieve_balance_transaction(txn_id: str) -> dict:
    return _d(client().v1.balance_transactions.retrieve(txn_id))


def create_refund(*, payment_intent: str, amount_vnd: int, metadata: dict, idempotency_key: str) -> dict:
    return _d(
        client().v1.refunds.create(
            params={"payment_intent": payment_intent, "amount": amount_vnd, "metadata": metadata},
            options={"idempotency_key": idempotency_key},
        )
    )


def list_events(*, created_gte: int, starting_after: str = "", limit: int = 100) -> tuple[list[dict], bool]:
    params = {"limit": limit, "created": {"gte": created_gte}}
    if starting_after:
        params["starting_after"] = starting_after
    page = client().v1.events.list(params=params)
    return [_d(e) for e in page.data], bool(page.has_more)


def list_payment_intents(*, starting_after: str = "", limit: int = 100) -> tuple[list[dict], bool]:
    params = {"limit": limit}
    if starting_after:
        params["starting_after"] = starting_after
    page = client().v1.payment_intents.list(params=params)
    return [_d(p) for p in page.data], bool(page.has_more)


def iter_all_payment_intents():
    """Raw SDK paging (the benchmark's yardstick)."""
    yield from client().v1.payment_intents.list(params={"limit": 100}).auto_paging_iter()


def verify_webhook(payload: bytes, sig_header: str) -> dict:
    """Raises ValueError (bad JSON) or SignatureVerificationError. Returns the event as a dict.
    The emulator's events say api_version 2017-08-15: we never reject on the version."""
    # The SDK's own check (HMAC-SHA256 over "t.payload", constant-time compare, timestamp
    # tolerance), then plain JSON: Webhook.construct_event does the same and additionally
    # builds a tree of StripeObjects that we would turn straight back into a dict.
    if isinstance(payload, bytes):
        payload = payload.decode("utf-8")
    stripe.WebhookSignature.verify_header(
        payload, sig_header, settings.STRIPE_WEBHOOK_SECRET, stripe.Webhook.DEFAULT_TOLERANCE
    )
    event = json.loads(payload)
    if not isinstance(event, dict):
        raise ValueError("a Stripe event is a JSON object")
    return event


def sign_payload(payload: str, secret: str, timestamp: int) -> str:
    """A Stripe-Signature header for `payload` (test fixtures and the webhook benchmark)."""
    signed = stripe.WebhookSignature._compute_signature(f"{timestamp}.{payload}", secret)
    return f"t={timestamp},v1={signed}"
