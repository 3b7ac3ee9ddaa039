"""The Stripe event inbox. The webhook only verifies and stores; a Celery task applies the
stored event through the guarded services in payments.py. Storing is idempotent on the
Stripe event id, applying is idempotent on Stripe object ids, so duplicates, replays and
out-of-order delivery are harmless."""

import logging

from django.db import connection
from django.utils import timezone

from .. import stripe_client
from ..models import StripeEvent, StripeEventStatus
from . import payments

logger = logging.getLogger("sponsorship.stripe_events")

HANDLED = {
    "payment_intent.succeeded",
    "payment_intent.payment_failed",
    "payment_intent.requires_action",
    "payment_intent.canceled",
    "charge.refunded",
    "refund.created",
    "refund.updated",
    "charge.refund.updated",
    "charge.dispute.created",
    "charge.dispute.updated",
    "charge.dispute.closed",
    "charge.dispute.funds_withdrawn",
    "charge.dispute.funds_reinstated",
}


def verify(payload: bytes, sig_header: str) -> dict:
    """Raises ValueError / stripe_client.SignatureVerificationError on a bad request."""
    return stripe_client.verify_webhook(payload, sig_header)


def store_event(event: dict, *, source: str = "webhook") -> tuple[int, bool]:
    """Insert the raw event once (ON CONFLICT DO NOTHING on the Stripe id). Returns (row id,
    created). One statement, no transaction of its own: cheap enough for the webhook."""
    import json

    with connection.cursor() as cur:
        cur.execute(
            "INSERT INTO sponsorship_stripeevent (stripe_event_id, type, payload, status, error, attempts, source,"
            " received_at) VALUES (%s, %s, %s, 'pending', '', 0, %s, now())"
            " ON CONFLICT (stripe_event_id) DO NOTHING RETURNING id",
            [event["id"], event.get("type", "")[:80], json.dumps(event), source],
        )
        row = cur.fetchone()
    if row:
        return row[0], True
    return StripeEvent.objects.values_list("id", flat=True).get(stripe_event_id=event["id"]), False


def apply_event(event: dict) -> bool:
    """Dispatch one event to its guarded service. Returns False when the type is ignored."""
    etype = event.get("type", "")
    obj = (event.get("data") or {}).get("object") or {}
    if etype in ("payment_intent.succeeded", "payment_intent.requires_action", "payment_intent.canceled"):
        payments.apply_payment_intent(obj)
    elif etype == "payment_intent.payment_failed":
        payments.apply_payment_failed(obj)
    elif etype == "charge.refunded":
        payments.apply_charge_refunded(obj)
    elif etype in ("refund.created", "refund.updated", "charge.refund.updated"):
        payments.apply_refund(obj)
    elif etype.startswith("charge.dispute."):
        payments.apply_dispute(obj, event_type=etype)
    else:
        return False
    return True


def process_event(event_row_id: int) -> str:
    """Apply a stored event unless it is already done. Safe to run twice (and concurrently:
    the services lock the donation row and post under unique keys). Domain errors are kept
    on the row (status failed) for `replay_stripe_events`; transient errors propagate so the
    task retries."""
    row = StripeEvent.objects.filter(pk=event_row_id).first()
    if row is None or row.status in (StripeEventStatus.PROCESSED, StripeEventStatus.IGNORED):
        return row.status if row else "missing"
    StripeEvent.objects.filter(pk=row.pk).update(attempts=row.attempts + 1)
    try:
        handled = apply_event(row.payload)
    except stripe_client.TransientErrors:
        raise
    except Exception as exc:  # noqa: BLE001 — any domain failure is recorded, not retried
        logger.exception("stripe event %s failed", row.stripe_event_id)
        StripeEvent.objects.filter(pk=row.pk).update(
            status=StripeEventStatus.FAILED, error=f"{type(exc).__name__}: {exc}"[:4000]
        )
        return StripeEventStatus.FAILED
    status = StripeEventStatus.PROCESSED if handled else StripeEventStatus.IGNORED
    StripeEvent.objects.filter(pk=row.pk).update(status=status, error="", processed_at=timezone.now())
    return status


def drain_inbox(*, batch: int = 200, include_failed: bool = False) -> int:
    """Process pending (optionally failed) events oldest first in bounded batches."""
    statuses = [StripeEventStatus.PENDING] + ([StripeEventStatus.FAILED] if include_failed else [])
    done = 0
    while True:
        ids = list(StripeEvent.objects.filter(status__in=statuses).order_by("id").values_list("id", flat=True)[:batch])
        if not ids:
            return done
        progressed = False
        for pk in ids:
            before = StripeEvent.objects.filter(pk=pk).values_list("status", flat=True).first()
            after = process_event(pk)
            progressed = progressed or after != before
            done += 1
        if include_failed and not progressed:
            return done
        if not include_failed and len(ids) < batch:
            return done
