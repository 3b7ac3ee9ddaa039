"""Celery tasks: each takes ids, calls one service, and holds only the retry policy.
Every task is safe to run twice."""

import logging

from celery import shared_task
from django.db import OperationalError

from . import health

logger = logging.getLogger("sponsorship.tasks")
TRANSIENT = (OperationalError, ConnectionError, TimeoutError)


def _transient():
    from . import stripe_client

    return TRANSIENT + stripe_client.TransientErrors


@shared_task(ignore_result=True)
def beat_heartbeat() -> None:
    """Sent by beat every CHUNGTAY_BEAT_HEARTBEAT_SECONDS; /healthz reads the tick. Safe to re-run."""
    health.record_beat_tick()


@shared_task(bind=True, ignore_result=True, max_retries=8)
def process_stripe_event(self, event_row_id: int) -> None:
    """Apply one stored Stripe event. Already processed: nothing happens."""
    from .services import stripe_events

    try:
        stripe_events.process_event(event_row_id)
    except _transient() as exc:
        raise self.retry(exc=exc, countdown=min(2**self.request.retries, 60)) from exc


@shared_task(bind=True, ignore_result=True, max_retries=8)
def drain_stripe_webhooks(self) -> None:
    """Published by the webhook when no drain is pending: apply the stored events in bulk."""
    from .services import stripe_events

    stripe_events.clear_drain_flag()
    try:
        stripe_events.drain_pending()
    except _transient() as exc:
        raise self.retry(exc=exc, countdown=min(2**self.request.retries, 60)) from exc


@shared_task(bind=True, ignore_result=True, max_retries=3)
def drain_stripe_inbox(self) -> None:
    """Beat: apply any stored event whose task was lost (a safety net for the webhook path)."""
    from .services import stripe_events

    try:
        stripe_events.drain_inbox(include_failed=True)
    except _transient() as exc:
        raise self.retry(exc=exc, countdown=30) from exc


@shared_task(bind=True, ignore_result=True, max_retries=3)
def stripe_reconcile(self) -> None:
    """Beat: page Stripe events and PaymentIntents since the cursor; repair; report."""
    from .services import reconcile

    try:
        reconcile.reconcile_stripe()
    except _transient() as exc:
        raise self.retry(exc=exc, countdown=60) from exc


@shared_task(ignore_result=True)
def check_ledger() -> None:
    """Beat: check the ledger invariants; a broken one becomes a LedgerAlarm and an error log."""
    from .services import ledger

    ledger.run_invariant_check()


@shared_task(bind=True, ignore_result=True, max_retries=3)
def match_bank_lines(self, statement_id: int | None = None) -> None:
    """Match unmatched bank statement lines to pledges (after an upload, and on beat)."""
    from .services import bank

    try:
        bank.match_lines(statement_id=statement_id)
    except TRANSIENT as exc:
        raise self.retry(exc=exc, countdown=30) from exc


@shared_task(bind=True, ignore_result=True, max_retries=5)
def send_receipt(self, donation_id: int) -> None:
    """Issue (once) and email the receipt of a paid gift."""
    from .services import receipts

    try:
        receipts.issue_and_send(donation_id)
    except TRANSIENT as exc:
        raise self.retry(exc=exc, countdown=60) from exc


@shared_task(bind=True, ignore_result=True, max_retries=5)
def send_receipts(self, donation_ids: list[int]) -> None:
    """Issue and email the receipts of a batch of newly paid gifts (one message per batch)."""
    from .services import receipts

    try:
        for donation_id in donation_ids:
            receipts.issue_and_send(donation_id)
    except TRANSIENT as exc:
        raise self.retry(exc=exc, countdown=60) from exc


def send_receipts_later(donation_ids: list[int]) -> None:
    """After commit, queue one receipt task for a batch, delayed by
    CHUNGTAY_RECEIPT_DELAY_SECONDS: a burst of payments is applied before the worker spends
    ~45 ms per PDF (receipts are not urgent; money status is)."""
    from django.conf import settings
    from django.db import transaction

    ids = list(donation_ids)
    transaction.on_commit(lambda: send_receipts.apply_async((ids,), countdown=settings.RECEIPT_DELAY_SECONDS))
