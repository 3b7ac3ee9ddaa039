"""Receipts: issued once per paid gift, PDF in Vietnamese and English, emailed and
downloadable. The PDF is rendered on demand from the row (nothing to drift)."""

from django.conf import settings
from django.core.mail import EmailMessage
from django.db import IntegrityError, transaction
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from ..models import Donation, Receipt
from .donations import PAID_STATUSES


def issue(donation: Donation) -> Receipt:
    """Idempotent: the receipt number is derived from the donation, one row per gift."""
    existing = Receipt.objects.filter(donation=donation).first()
    if existing:
        return existing
    number = f"BL-{timezone.localdate():%Y}-{donation.pk:07d}"
    try:
        with transaction.atomic():
            return Receipt.objects.create(donation=donation, number=number)
    except IntegrityError:
        return Receipt.objects.get(donation=donation)


def receipt_pdf(receipt: Receipt) -> bytes:
    from .receipt_pdf import render

    return render(receipt)


def issue_and_send(donation_id: int) -> Receipt | None:
    """Issue the receipt of a paid gift and email it once (emailed_at guards resends)."""
    donation = Donation.objects.select_related("donor").get(pk=donation_id)
    if donation.status not in PAID_STATUSES:
        return None
    receipt = issue(donation)
    if receipt.emailed_at:
        return receipt
    with translation.override(settings.LANGUAGE_CODE):
        subject = _("Your receipt %(n)s — thank you") % {"n": receipt.number}
        body = _("Thank you for your gift of %(a)s VND (reference %(r)s). Your receipt is attached.") % {
            "a": f"{donation.amount_received_vnd:,}".replace(",", "."),
            "r": donation.reference,
        }
    message = EmailMessage(subject, body, to=[donation.donor.email])
    message.attach(f"{receipt.number}.pdf", receipt_pdf(receipt), "application/pdf")
    message.send()
    Receipt.objects.filter(pk=receipt.pk, emailed_at=None).update(emailed_at=timezone.now())
    return receipt
