"""The Stripe event inbox. The webhook only verifies and stores; a Celery task applies the
stored event through the guarded services in payments.py. Storing is idempotent on the
Stripe event id, applying is idempotent on Stripe object ids, so duplicates, replays and
out-of-order delivery are harmless."""

import functools
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


def store_event(event: dict, *, source: str = "webhook", raw: str | bytes | None = None) -> tuple[int, bool]:
    """Insert the raw event once (ON CONFLICT DO NOTHING on the Stripe id). Returns (row id,
    created). One statement, no transaction of its own: cheap enough for the webhook.
    `raw` is the verified request body (stored as received instead of re-serialising)."""
    import json

    if isinstance(raw, bytes):
        raw = raw.decode("utf-8")
    with connection.cursor() as cur:
        cur.execute(
            "INSERT INTO sponsorship_stripeevent (stripe_event_id, type, payload, status, error, attempts, source,"
            " received_at) VALUES (%s, %s, %s, 'pending', '', 0, %s, now())"
            " ON CONFLICT (stripe_event_id) DO NOTHING RETURNING id",
            [event["id"], event.get("type", "")[:80], raw if raw is not None else json.dumps(event), source],
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


BATCH_SQL_TX = """
WITH src AS (
    SELECT * FROM unnest(%(keys)s::text[], %(donations)s::bigint[]) AS s(key, donation_id)
)
INSERT INTO sponsorship_ledgertransaction (key, kind, memo, donation_id, created_at)
SELECT src.key, 'card_paid', 'card gift ' || d.reference, src.donation_id, now()
FROM src JOIN sponsorship_donation d ON d.id = src.donation_id
ON CONFLICT (key) DO NOTHING
RETURNING id, key
"""

BATCH_SQL_DONATIONS = """
UPDATE sponsorship_donation d SET
    stripe_payment_intent_id = v.pi, stripe_charge_id = COALESCE(v.charge, d.stripe_charge_id),
    fee_vnd = CASE WHEN d.paid_at IS NULL THEN v.fee ELSE d.fee_vnd END, failure_message = ''
FROM unnest(%(ids)s::bigint[], %(pis)s::text[], %(charges)s::text[], %(fees)s::bigint[]) AS v(id, pi, charge, fee)
WHERE d.id = v.id
"""


def _batchable(payload: dict) -> tuple | None:
    """(pi id, donation id, amount, fee, charge id) when a payment_intent.succeeded event
    can take the bulk path: our metadata, VND, fee embedded (no network needed)."""
    if payload.get("type") != "payment_intent.succeeded":
        return None
    pi = (payload.get("data") or {}).get("object") or {}
    donation_id = str((pi.get("metadata") or {}).get("donation_id", ""))
    if not donation_id.isdigit() or (pi.get("currency") or "").lower() != "vnd" or pi.get("status") != "succeeded":
        return None
    charge = pi.get("latest_charge")
    fee = 0
    charge_id = None
    if isinstance(charge, dict):
        charge_id = charge.get("id")
        bt = charge.get("balance_transaction")
        if isinstance(bt, str) and bt:
            return None  # the fee needs a network call: the single path fetches it
        if isinstance(bt, dict):
            fee = int(bt.get("fee") or 0)
    elif charge is not None:
        return None
    amount = int(pi.get("amount_received") or pi.get("amount") or 0)
    return pi["id"], int(donation_id), amount, fee, charge_id


def process_succeeded_batch(limit: int = 500) -> int:
    """Bulk path for the common case, `payment_intent.succeeded` for one of our card gifts
    with the expected amount: claim up to `limit` pending events (FOR UPDATE SKIP LOCKED, so
    concurrent workers take disjoint batches), post each PaymentIntent once (ledger keys
    `card_paid:<pi>` with ON CONFLICT DO NOTHING, the same keys as the single path), recompute
    the gifts from the ledger in one statement, mark the events processed, queue one receipt
    task. Anything unusual (unknown gift, other amount, fee behind a network call) is left
    pending for the guarded single path. Returns how many events it applied."""
    from django.db import connection, transaction

    from .. import tasks
    from ..models import Donation, Method
    from .donations import RECOMPUTE_SQL

    with transaction.atomic():
        rows = list(
            StripeEvent.objects.select_for_update(skip_locked=True)
            .filter(status=StripeEventStatus.PENDING, type="payment_intent.succeeded")
            .order_by("id")
            .values_list("id", "payload")[:limit]
        )
        candidates = {row_id: info for row_id, payload in rows if (info := _batchable(payload))}
        if not candidates:
            return 0
        gifts = {
            pk: (amount, fund)
            for pk, amount, fund in Donation.objects.select_for_update()
            .filter(pk__in={c[1] for c in candidates.values()}, method=Method.CARD)
            .order_by("id")
            .values_list("id", "amount_vnd", "fund_key")
        }
        chosen = {row_id: c for row_id, c in candidates.items() if c[1] in gifts and gifts[c[1]][0] == c[2]}
        if not chosen:
            return 0
        by_pi = {}
        for c in chosen.values():
            by_pi.setdefault(c[0], c)
        with connection.cursor() as cur:
            cur.execute(
                BATCH_SQL_TX,
                {"keys": [f"card_paid:{pi}" for pi in by_pi], "donations": [c[1] for c in by_pi.values()]},
            )
            created = dict((key, tx_id) for tx_id, key in cur.fetchall())
            entries = []
            for pi, (_pi, donation_id, amount, fee, _charge) in by_pi.items():
                tx_id = created.get(f"card_paid:{pi}")
                if tx_id is None:
                    continue  # posted before (a duplicate): nothing to write
                entries.append((tx_id, "stripe_clearing", "", amount - fee))
                if fee:
                    entries.append((tx_id, "fees", "", fee))
                entries.append((tx_id, "donor_funds", gifts[donation_id][1], -amount))
            if entries:
                cols = list(zip(*entries, strict=True))
                cur.execute(
                    "INSERT INTO sponsorship_ledgerentry (transaction_id, account, fund, amount) "
                    "SELECT * FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::bigint[])",
                    [list(c) for c in cols],
                )
            cur.execute(
                BATCH_SQL_DONATIONS,
                {
                    "ids": [c[1] for c in by_pi.values()],
                    "pis": list(by_pi),
                    "charges": [c[4] for c in by_pi.values()],
                    "fees": [c[3] for c in by_pi.values()],
                },
            )
            cur.execute(
                RECOMPUTE_SQL, {"ids": sorted({c[1] for c in by_pi.values()}), "note": "payment_intent succeeded"}
            )
            newly_paid = [r[0] for r in cur.fetchall()]
            cur.execute(
                "UPDATE sponsorship_stripeevent SET status = 'processed', error = '', attempts = attempts + 1, "
                "processed_at = now() WHERE id = ANY(%s::bigint[])",
                [list(chosen)],
            )
        if newly_paid:
            tasks.send_receipts_later(newly_paid)
        from ..matching import hooks as matching_hooks  # match offers and a matching run, after commit

        matching_hooks.gifts_paid({c[1] for c in by_pi.values()})
    return len(chosen)


def process_event(event_row_id: int) -> str:
    """Apply a stored event unless it is already done. Safe to run twice (and concurrently:
    the services lock the donation row and post under unique keys). Domain errors are kept
    on the row (status failed) for `replay_stripe_events`; transient errors propagate so the
    task retries."""
    row = StripeEvent.objects.filter(pk=event_row_id).first()
    if row is None or row.status in (StripeEventStatus.PROCESSED, StripeEventStatus.IGNORED):
        return row.status if row else "missing"
    if row.status == StripeEventStatus.PENDING and row.type == "payment_intent.succeeded":
        # Take this event and the other pending successes in one bulk pass.
        process_succeeded_batch()
        row.refresh_from_db()
        if row.status != StripeEventStatus.PENDING:
            return row.status
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


# One drain in flight at a time, not one Celery message per event: the webhook publishes a
# drain only when it sets this flag (Redis SET NX with a TTL); the drain task clears it
# *before* reading the inbox, so an event stored after that moment publishes a new drain
# and none is left behind. The TTL (and the beat drain) cover a drain message that was lost.
DRAIN_FLAG = "stripe-inbox:drain-pending"
DRAIN_FLAG_TTL = 30


@functools.cache
def _redis():
    """One client (and connection pool) per process; Django's cache backend builds a new
    client object on every call, which costs more than the SET NX itself."""
    import redis
    from django.conf import settings

    return redis.Redis.from_url(settings.REDIS_URL)


def _flag_key() -> str:
    from django.conf import settings

    return f"{settings.CACHES['default'].get('KEY_PREFIX', '')}:{DRAIN_FLAG}"


def request_drain() -> bool:
    """After storing an event: publish a drain unless one is already pending. Returns
    whether a drain was published. Errors are logged: the event is stored and the beat
    drain applies it."""
    from .. import tasks

    try:
        if not _redis().set(_flag_key(), 1, nx=True, ex=DRAIN_FLAG_TTL):
            return False
    except Exception:  # noqa: BLE001 — Redis down: publish anyway, the drain is idempotent
        logger.exception("drain flag unavailable")
    try:
        tasks.drain_stripe_webhooks.delay()
    except Exception:  # noqa: BLE001 — the event is stored; the beat drain applies it
        logger.exception("could not enqueue the stripe inbox drain")
        clear_drain_flag()
        return False
    return True


def clear_drain_flag() -> None:
    try:
        _redis().delete(_flag_key())
    except Exception:  # noqa: BLE001 — the flag expires on its own
        logger.exception("could not clear the drain flag")


def drain_pending(*, limit: int = 1000) -> int:
    """Apply every pending event: successes in bulk batches, anything else one by one
    through the guarded single path. Returns how many events it handled."""
    done = 0
    while applied := process_succeeded_batch(limit):
        done += applied
    return done + drain_inbox()


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
