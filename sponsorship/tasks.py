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


# --- Enrollment (issue 6) -------------------------------------------------------------------------
@shared_task(bind=True, ignore_result=True, max_retries=5)
def enrollment_rollups_recompute(self) -> None:
    """Rebuild the enrollment rollups from the cards (after each card-list import; nightly)."""
    from .enrollment.rollups import rollups_recompute

    try:
        rollups_recompute()
    except TRANSIENT as exc:
        raise self.retry(exc=exc, countdown=60) from exc


@shared_task(bind=True, ignore_result=True, max_retries=5)
def enrollment_daily(self) -> None:
    """Cards active/expiring/expired by date, renewal reminders, then the rollups."""
    from .enrollment.reminders import send_renewal_reminders
    from .enrollment.rollups import cards_advance_by_date, rollups_recompute

    try:
        cards_advance_by_date()
        send_renewal_reminders()
        rollups_recompute()
    except TRANSIENT as exc:
        raise self.retry(exc=exc, countdown=300) from exc


@shared_task(bind=True, ignore_result=True, max_retries=5, acks_late=True)
def match_province(self, province_id: int) -> None:
    """Match one province shard: one transaction funds at most
    CHUNGTAY_MATCHING_MAX_HOUSEHOLDS_PER_RUN households of the top of the queue, and the task
    re-queues itself while a run stopped at that cap. Safe to re-run: a busy shard is skipped,
    a finished one finds nothing left to fund."""
    from .matching import services, triggers

    # Cleared before reading: money or members arriving during this run ask for another one.
    triggers.clear_flag(province_id)
    try:
        run = services.match_province(province_id=province_id)
        if run is None:
            triggers.request_match([province_id])  # shard busy: come back after the delay
        elif run.capped:
            match_province.delay(province_id)  # the rest of the queue, in the next transaction
    except TRANSIENT as exc:
        raise self.retry(exc=exc, countdown=min(2**self.request.retries, 30)) from exc


@shared_task(ignore_result=True)
def match_all() -> None:
    """Beat (every CHUNGTAY_MATCHING_EVERY_SECONDS): one match_province task per province with
    approved members. Safe to re-run."""
    from .matching import services, triggers

    triggers.clear_flag(triggers.ALL)  # requested by unrestricted money (matching/triggers.py)
    for province_id in services.provinces_with_work():
        match_province.delay(province_id)


# --- Matching features (sponsorship/matching/{holds,expiry,offers}.py) ----------------------------
@shared_task(ignore_result=True)
def release_expired_holds() -> None:
    """Beat: end holds past their time (or of failed pledges); their provinces are matched again."""
    from .matching import holds

    holds.release_expired()


@shared_task(bind=True, ignore_result=True, max_retries=3)
def expire_unmatched_money(self) -> None:
    """Beat: money unmatched too long goes where most needed (donor agreed) or is offered back;
    donors are emailed. Safe to re-run: one decision per gift, notified_at after sending."""
    from .matching import expiry

    try:
        expiry.expire_unmatched()
    except TRANSIENT as exc:
        raise self.retry(exc=exc, countdown=300) from exc


@shared_task(bind=True, ignore_result=True, max_retries=5)
def apply_match_offers(self, donation_ids: list[int] | None = None) -> None:
    """After gifts clear (and on beat, for all): corporate match offers match them. Safe to re-run."""
    from .matching import offers

    try:
        offers.offers_apply(donation_ids=donation_ids)
    except TRANSIENT as exc:
        raise self.retry(exc=exc, countdown=min(2**self.request.retries, 60)) from exc
