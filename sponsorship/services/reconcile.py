"""Stripe reconciliation (Celery beat). Two passes, each in bounded pages with a cursor kept
on a row after every page, so a crashed run resumes and a second run repeats nothing:

1. Events since the stored `created` watermark (minus an overlap; Stripe keeps 30 days):
   each is stored in the inbox under its unique id (a webhook that never came is now there)
   and applied through the same guarded services.
2. PaymentIntents after the stored `starting_after` id: a succeeded one with no ledger
   posting is repaired (and reported as `missed_webhook`); unknown ones and amount or
   currency mismatches are reported by the appliers themselves.
"""

import time

from django.conf import settings

from .. import stripe_client
from ..models import Discrepancy, LedgerTransaction, ReconcileCursor
from . import payments, stripe_events

OVERLAP_SECONDS = 300


def _cursor(name: str) -> ReconcileCursor:
    return ReconcileCursor.objects.get_or_create(name=name)[0]


def reconcile_events(*, batch: int, max_pages: int) -> int:
    cursor = _cursor("events")
    progress = _cursor("events:newest")  # newest `created` seen by the run in progress
    since = cursor.created_gte or int(time.time()) - settings.STRIPE_RECONCILE_LOOKBACK_DAYS * 86400
    seen = 0
    for _page in range(max_pages):
        events, has_more = stripe_client.list_events(
            created_gte=since, starting_after=cursor.starting_after, limit=batch
        )
        for event in events:
            row_id, _created = stripe_events.store_event(event, source="reconcile")
            stripe_events.process_event(row_id)
            progress.created_gte = max(progress.created_gte, int(event.get("created") or 0))
        seen += len(events)
        progress.save(update_fields=["created_gte", "updated_at"])
        if has_more and events:
            cursor.starting_after = events[-1]["id"]
            cursor.save(update_fields=["starting_after", "updated_at"])
            continue
        # Listing complete: move the watermark (with an overlap: storing is idempotent).
        cursor.created_gte = max(cursor.created_gte, progress.created_gte - OVERLAP_SECONDS, 0)
        cursor.starting_after = ""
        cursor.save(update_fields=["created_gte", "starting_after", "updated_at"])
        break
    return seen


def reconcile_payment_intents(*, batch: int, max_pages: int) -> dict:
    cursor = _cursor("payment_intents")
    out = {"checked": 0, "repaired": 0}
    for _page in range(max_pages):
        pis, has_more = stripe_client.list_payment_intents(starting_after=cursor.starting_after, limit=batch)
        if pis:
            posted = set(
                LedgerTransaction.objects.filter(key__in=[f"card_paid:{p['id']}" for p in pis]).values_list(
                    "key", flat=True
                )
            )
            for pi in pis:
                out["checked"] += 1
                if pi.get("status") != "succeeded" or f"card_paid:{pi['id']}" in posted:
                    continue
                donation = payments.apply_payment_intent(pi, source="reconcile")
                if donation is not None:
                    out["repaired"] += 1
                    Discrepancy.objects.get_or_create(
                        kind="missed_webhook",
                        stripe_object_id=pi["id"],
                        defaults={"donation": donation, "details": {"amount": pi.get("amount"), "repaired": True}},
                    )
            # The emulator lists oldest first, so the last id is where the next run resumes.
            cursor.starting_after = pis[-1]["id"]
            cursor.save(update_fields=["starting_after", "updated_at"])
        if not has_more:
            break
    return out


def reconcile_stripe(*, batch: int | None = None, max_pages: int = 50) -> dict:
    """Run both passes. Safe to run twice and concurrently with webhooks."""
    batch = batch or settings.STRIPE_RECONCILE_BATCH
    events = reconcile_events(batch=batch, max_pages=max_pages)
    pis = reconcile_payment_intents(batch=batch, max_pages=max_pages)
    return {"events": events, **pis}
