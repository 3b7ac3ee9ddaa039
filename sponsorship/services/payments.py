"""Card payments through Stripe, refunds and disputes.

Every fact from Stripe (a synchronous API answer, a webhook, the reconciler) goes through the
same guarded appliers below: `apply_payment_intent`, `apply_refund`, `apply_charge_refunded`,
`apply_dispute`. Each locks the donation row, posts ledger transactions under keys derived
from Stripe ids (so a second application writes nothing) and recomputes the donation's
money from the ledger. Network calls never happen inside `atomic()`."""

import logging

from django.db import transaction
from django.db.models import Sum
from django.utils import timezone
from django.utils.translation import gettext as _

from config.exceptions import ApplicationError, ConflictError

from .. import stripe_client
from ..models import Account, Discrepancy, Dispute, Donation, DonationStatus, Method, Refund, RefundStatus
from . import ledger
from .donations import PAID_STATUSES, recompute_money, transition

logger = logging.getLogger("sponsorship.payments")
S = DonationStatus


def _metadata(donation: Donation) -> dict:
    return {
        "donation_id": str(donation.pk),
        "donation_public_id": str(donation.public_id),
        "reference": donation.reference,
    }


def card_setup_start(donation: Donation) -> str:
    """Create (once) the SetupIntent the page confirms with confirmCardSetup. Returns its
    client secret. Idempotency key derived from the row."""
    if donation.method != Method.CARD:
        raise ApplicationError(_("This gift is paid by bank transfer."), code="method")
    if donation.status in PAID_STATUSES:
        raise ConflictError(_("This gift is already paid."), code="already_paid")
    si = stripe_client.create_setup_intent(
        metadata=_metadata(donation), idempotency_key=f"donation-{donation.public_id}-setup"
    )
    Donation.objects.filter(pk=donation.pk).update(stripe_setup_intent_id=si["id"])
    donation.stripe_setup_intent_id = si["id"]
    return si["client_secret"]


def card_pay(donation: Donation, payment_method_id: str) -> dict:
    """Create and confirm the PaymentIntent in VND for a confirmed card. Returns
    {"status": ..., "client_secret": ... (only when 3-D Secure is needed), "message": ...}.
    Idempotency key = donation + payment method: the same click twice is one charge, a
    second card after a decline is a new attempt."""
    if donation.method != Method.CARD:
        raise ApplicationError(_("This gift is paid by bank transfer."), code="method")
    if donation.status in PAID_STATUSES:
        raise ConflictError(_("This gift is already paid."), code="already_paid")
    if not payment_method_id or not payment_method_id.startswith("pm_"):
        raise ApplicationError(_("The card was not confirmed."), code="payment_method")
    try:
        pi = stripe_client.create_and_confirm_payment_intent(
            amount_vnd=donation.amount_vnd,
            payment_method=payment_method_id,
            metadata=_metadata(donation),
            idempotency_key=f"donation-{donation.public_id}-pi-{payment_method_id}",
        )
    except stripe_client.CardError as exc:
        message = getattr(exc, "user_message", None) or str(exc)
        with transaction.atomic():
            locked = Donation.objects.select_for_update().get(pk=donation.pk)
            if locked.status not in PAID_STATUSES:
                transition(locked, S.FAILED, f"card declined: {message}")
                locked.failure_message = message
                locked.save(update_fields=["status", "failure_message"])
        return {"status": S.FAILED, "message": message}
    apply_payment_intent(pi, source="api")
    donation.refresh_from_db()
    out = {"status": donation.status, "payment_intent": pi["id"]}
    if pi["status"] == "requires_action":
        out["client_secret"] = pi["client_secret"]
    return out


def _find_donation(obj: dict, *, pi_id: str | None = None) -> Donation | None:
    meta = obj.get("metadata") or {}
    if meta.get("donation_id", "").isdigit():
        d = Donation.objects.filter(pk=int(meta["donation_id"])).first()
        if d:
            return d
    if pi_id:
        return Donation.objects.filter(stripe_payment_intent_id=pi_id).first()
    return None


def _charge_of(pi: dict) -> dict | None:
    charge = pi.get("latest_charge")
    if isinstance(charge, dict):
        return charge
    if isinstance(charge, str):
        # An id (real Stripe): the embedded list of older API versions may still carry it.
        for c in (pi.get("charges") or {}).get("data", []):
            if c.get("id") == charge:
                return c
        return {"id": charge}
    data = (pi.get("charges") or {}).get("data") or []
    return data[-1] if data else None


def _fee_of(charge: dict | None) -> int:
    """Stripe's fee for a charge (network, outside any transaction). Emulator: always 0."""
    if not charge:
        return 0
    bt = charge.get("balance_transaction")
    if isinstance(bt, dict):
        return int(bt.get("fee") or 0)
    if isinstance(bt, str) and bt:
        try:
            return int(stripe_client.retrieve_balance_transaction(bt).get("fee") or 0)
        except stripe_client.InvalidRequestError:
            return 0
    return 0


def apply_payment_intent(pi: dict, *, source: str = "webhook") -> Donation | None:
    """Apply what Stripe says about a PaymentIntent. Idempotent: the ledger key is
    `card_paid:<pi id>`; an older status arriving after success changes nothing."""
    donation = _find_donation(pi, pi_id=pi.get("id"))
    if donation is None:
        Discrepancy.objects.get_or_create(
            kind="unknown_payment",
            stripe_object_id=pi["id"],
            defaults={
                "details": {"amount": pi.get("amount"), "currency": pi.get("currency"), "status": pi.get("status")}
            },
        )
        return None
    status = pi.get("status")
    charge = _charge_of(pi) if status == "succeeded" else None
    fee = _fee_of(charge) if status == "succeeded" else 0
    with transaction.atomic():
        donation = Donation.objects.select_for_update().get(pk=donation.pk)
        if not donation.stripe_payment_intent_id or status == "succeeded":
            donation.stripe_payment_intent_id = pi["id"]
        if status == "succeeded":
            amount = int(pi.get("amount_received") or pi.get("amount") or 0)
            currency = (pi.get("currency") or "").lower()
            if currency != "vnd" or amount != donation.amount_vnd:
                Discrepancy.objects.get_or_create(
                    kind="amount_or_currency_mismatch",
                    stripe_object_id=pi["id"],
                    defaults={
                        "donation": donation,
                        "details": {"expected": donation.amount_vnd, "amount": amount, "currency": currency},
                    },
                )
            if currency == "vnd" and amount > 0:
                if charge and charge.get("id"):
                    donation.stripe_charge_id = charge["id"]
                ledger.ledger_post(
                    key=f"card_paid:{pi['id']}",
                    kind="card_paid",
                    donation=donation,
                    memo=f"card gift {donation.reference}",
                    entries=[
                        ledger.debit(Account.STRIPE_CLEARING, amount - fee),
                        ledger.debit(Account.FEES, fee),
                        ledger.credit(Account.DONOR_FUNDS, amount, donation.fund_key),
                    ],
                )
                first_payment = donation.paid_at is None
                if first_payment:
                    donation.paid_at = timezone.now()
                    donation.fee_vnd = fee
                donation.failure_message = ""
                recompute_money(donation, f"payment_intent {pi['id']} succeeded ({source})")
                if first_payment:
                    from .. import tasks

                    tasks.send_receipt.delay_on_commit(donation.pk)
                return donation
        elif donation.status not in PAID_STATUSES and donation.status != S.CANCELED:
            if status == "requires_action":
                transition(donation, S.REQUIRES_ACTION, f"3-D Secure required ({source})")
            elif status in ("requires_payment_method",) and pi.get("last_payment_error"):
                error = pi["last_payment_error"] or {}
                transition(donation, S.FAILED, f"payment failed ({source})")
                donation.failure_message = (error.get("message") or "")[:500]
            elif status == "canceled":
                transition(donation, S.CANCELED, f"payment canceled ({source})")
        donation.save()
    return donation


def apply_payment_failed(pi: dict, *, source: str = "webhook") -> Donation | None:
    """payment_intent.payment_failed: failed unless money already arrived (out of order)."""
    donation = _find_donation(pi, pi_id=pi.get("id"))
    if donation is None:
        return None
    with transaction.atomic():
        donation = Donation.objects.select_for_update().get(pk=donation.pk)
        if donation.status not in PAID_STATUSES and donation.status != S.FAILED:
            transition(donation, S.FAILED, f"payment_intent {pi.get('id')} failed ({source})")
            error = pi.get("last_payment_error") or {}
            donation.failure_message = (error.get("message") or _("The payment failed."))[:500]
            donation.save()
    return donation


# --- Refunds ---------------------------------------------------------------------------------


def _refundable(donation: Donation) -> int:
    taken = donation.refunds.exclude(status=RefundStatus.FAILED).aggregate(s=Sum("amount_vnd"))["s"] or 0
    return donation.amount_received_vnd - taken


def refund_request(*, donation: Donation, amount_vnd: int | None, by) -> Refund:
    """Finance staff refund a card gift, fully (amount None) or partly. The Refund row is
    written first (locked donation, so two clicks cannot over-refund), then Stripe is called
    outside the transaction with the row's id as idempotency key, then the answer is applied."""
    from donors.models import Role

    if not (by.role in (Role.FINANCE, Role.ADMIN) or by.is_superuser):
        raise ApplicationError(_("Only finance staff can refund."), code="forbidden")
    with transaction.atomic():
        locked = Donation.objects.select_for_update().get(pk=donation.pk)
        if locked.method != Method.CARD or not locked.stripe_payment_intent_id:
            raise ConflictError(_("Only card gifts that were paid can be refunded here."), code="not_refundable")
        refundable = _refundable(locked)
        amount = refundable if amount_vnd is None else int(amount_vnd)
        if amount <= 0 or amount > refundable:
            raise ConflictError(
                _("At most %(max)s VND can still be refunded.") % {"max": refundable}, code="refund_too_large"
            )
        refund = Refund.objects.create(donation=locked, amount_vnd=amount, requested_by=by)
    try:
        stripe_refund = stripe_client.create_refund(
            payment_intent=locked.stripe_payment_intent_id,
            amount_vnd=amount,
            metadata={"refund_id": str(refund.pk), "donation_id": str(locked.pk)},
            idempotency_key=f"refund-{refund.pk}",
        )
    except stripe_client.StripeError as exc:
        Refund.objects.filter(pk=refund.pk).update(status=RefundStatus.FAILED, error=str(exc)[:1000])
        raise ApplicationError(_("Stripe refused the refund: %(e)s") % {"e": exc}, code="stripe_refund") from exc
    apply_refund(stripe_refund, source="api")
    refund.refresh_from_db()
    return refund


def _post_refund(refund: Refund, donation: Donation) -> None:
    key = refund.stripe_refund_id or f"local-{refund.pk}"
    ledger.ledger_post(
        key=f"refund:{key}",
        kind="refund",
        donation=donation,
        memo=f"refund {donation.reference}",
        entries=[
            ledger.debit(Account.DONOR_FUNDS, refund.amount_vnd, donation.fund_key),
            ledger.credit(Account.REFUNDS, refund.amount_vnd),
        ],
    )
    ledger.ledger_post(
        key=f"refund_settled:{key}",
        kind="refund_settled",
        donation=donation,
        memo=f"refund paid {key}",
        entries=[
            ledger.debit(Account.REFUNDS, refund.amount_vnd),
            ledger.credit(Account.STRIPE_CLEARING, refund.amount_vnd),
        ],
    )


def apply_refund(obj: dict, *, source: str = "webhook") -> Refund | None:
    """Apply a Stripe Refund object (ours or started at Stripe). Idempotent by refund id."""
    meta = obj.get("metadata") or {}
    pi_id = obj.get("payment_intent")
    donation = _find_donation(obj, pi_id=pi_id)
    if donation is None:
        Discrepancy.objects.get_or_create(
            kind="refund_without_record",
            stripe_object_id=obj["id"],
            defaults={"details": {"amount": obj.get("amount")}},
        )
        return None
    with transaction.atomic():
        donation = Donation.objects.select_for_update().get(pk=donation.pk)
        refund = Refund.objects.filter(stripe_refund_id=obj["id"]).first()
        if refund is None and str(meta.get("refund_id", "")).isdigit():
            refund = Refund.objects.filter(pk=int(meta["refund_id"]), donation=donation).first()
        if refund is None:
            refund = Refund(donation=donation, amount_vnd=int(obj["amount"]))
        refund.stripe_refund_id = obj["id"]
        status = obj.get("status")
        if status == "succeeded":
            refund.status = RefundStatus.SUCCEEDED
        elif status in ("failed", "canceled"):
            refund.status = RefundStatus.FAILED
        refund.save()
        if refund.status == RefundStatus.SUCCEEDED:
            _post_refund(refund, donation)
            recompute_money(donation, f"refund {obj['id']} ({source})")
    return refund


def apply_charge_refunded(charge: dict, *, source: str = "webhook") -> Donation | None:
    """charge.refunded: apply each listed refund; whatever the total `amount_refunded` still
    exceeds (refunds not listed, newer API versions) becomes one refund keyed by the charge
    and that total, so replays and older events arriving late change nothing."""
    pi_id = charge.get("payment_intent")
    donation = _find_donation(charge, pi_id=pi_id)
    if donation is None:
        Discrepancy.objects.get_or_create(
            kind="refund_without_record",
            stripe_object_id=charge["id"],
            defaults={"details": {"amount_refunded": charge.get("amount_refunded")}},
        )
        return None
    for r in (charge.get("refunds") or {}).get("data") or []:
        r = {**r, "payment_intent": r.get("payment_intent") or pi_id}
        r.setdefault("metadata", {})
        apply_refund(r, source=source)
    total = int(charge.get("amount_refunded") or 0)
    with transaction.atomic():
        donation = Donation.objects.select_for_update().get(pk=donation.pk)
        known = donation.refunds.exclude(status=RefundStatus.FAILED).aggregate(s=Sum("amount_vnd"))["s"] or 0
        missing = total - known
        if missing > 0:
            refund = Refund.objects.create(
                donation=donation,
                amount_vnd=missing,
                status=RefundStatus.SUCCEEDED,
                stripe_refund_id=f"{charge['id']}:upto:{total}",
            )
            _post_refund(refund, donation)
            recompute_money(donation, f"charge {charge['id']} refunded ({source})")
    return donation


def apply_dispute(dispute: dict, *, event_type: str, source: str = "webhook") -> Donation | None:
    """charge.dispute.*: money leaves when the dispute opens (or funds_withdrawn) and comes
    back when it is won (or funds_reinstated). A closed event arriving first posts both
    sides it implies, so any order ends with the same ledger."""
    pi_id = dispute.get("payment_intent")
    donation = _find_donation(dispute, pi_id=pi_id)
    if donation is None and dispute.get("charge"):
        donation = Donation.objects.filter(stripe_charge_id=dispute["charge"]).first()
    if donation is None:
        # Disputes carry no metadata: until the payment itself is applied we cannot place
        # the money. Fail the event (kept with its error); the inbox drain and
        # replay_stripe_events apply it once the payment is known.
        raise ApplicationError(f"dispute {dispute['id']}: payment not known yet", code="unknown_charge")
    amount = int(dispute["amount"])
    status = dispute.get("status", "")
    reinstated = event_type.endswith("funds_reinstated") or status == "won"
    with transaction.atomic():
        donation = Donation.objects.select_for_update().get(pk=donation.pk)
        row, _created = Dispute.objects.get_or_create(
            stripe_dispute_id=dispute["id"], defaults={"donation": donation, "amount_vnd": amount, "status": status}
        )
        if status:
            row.status = status
        ledger.ledger_post(
            key=f"dispute:{dispute['id']}",
            kind="dispute",
            donation=donation,
            memo=f"dispute {dispute['id']}",
            entries=[
                ledger.debit(Account.DONOR_FUNDS, amount, donation.fund_key),
                ledger.credit(Account.STRIPE_CLEARING, amount),
            ],
        )
        row.is_funds_withdrawn = True
        if reinstated:
            ledger.ledger_post(
                key=f"dispute_reinstated:{dispute['id']}",
                kind="dispute_reinstated",
                donation=donation,
                memo=f"dispute won {dispute['id']}",
                entries=[
                    ledger.debit(Account.STRIPE_CLEARING, amount),
                    ledger.credit(Account.DONOR_FUNDS, amount, donation.fund_key),
                ],
            )
            row.is_funds_withdrawn = False
        row.save()
        recompute_money(donation, f"{event_type} {dispute['id']} ({source})")
    return donation
