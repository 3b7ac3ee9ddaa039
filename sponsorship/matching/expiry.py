"""Money left unmatched: after CHUNGTAY_UNMATCHED_EXPIRY_DAYS since it cleared, or once the
campaign's list deadline (CHUNGTAY_CAMPAIGN_LIST_DEADLINE) has passed, a gift's money that no
run could use is decided on, once per gift (GiftExpiry):

- the donor agreed ("where most needed", `Donation.has_redirect_consent`): the gift's
  restriction is lifted (locality, product and group cleared, new fund key) and its money moves
  in the ledger donor_funds[old fund] → donor_funds[*], kind `redirect`, attributed to the gift
  (so what the gift has left is unchanged); the next runs of every province can use it;
- otherwise a refund is offered: the record appears on the donor's dashboard with a link
  (`/matching/unmatched/<token>/`) where the donor asks for the refund (finance pays it on
  /matching/flagged/) or lets the money go where most needed.

The donor is emailed either way (Django's mail backend); `notified_at` is written only after
the message was sent, so a failed send is retried by the next check.
Unrestricted gifts whose donor agreed are already "where most needed" and are left alone.
"""

import logging
from datetime import timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.db import connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from ..models import Account, Donation, DonationStatus
from ..services.donations import fund_key
from ..services.ledger import credit, debit, ledger_post
from .feature_models import DonorChoice, ExpiryOutcome, GiftExpiry

logger = logging.getLogger("sponsorship.matching")

CLEARED = (DonationStatus.SUCCEEDED, DonationStatus.PARTIALLY_PAID, DonationStatus.PARTIALLY_REFUNDED)

# Cleared gifts due for a decision and what each has left (its own donor_funds credits minus its
# allocations, as the matcher reads it). Everything that would be skipped is filtered here, so a
# batch never fills up with gifts that need nothing (fully matched, already where most needed)
# and the oldest due gifts always make progress. Match money (offers.py) carries the consent, so
# it is redirected like any consenting gift and never offered back.
LEFT_SQL = """
SELECT id, money_left FROM (
    SELECT d.id, d.paid_at,
           COALESCE((SELECT -SUM(e.amount) FROM sponsorship_ledgerentry e
                     JOIN sponsorship_ledgertransaction t ON t.id = e.transaction_id
                     WHERE t.donation_id = d.id AND e.account = 'donor_funds'), 0)
         - COALESCE((SELECT SUM(a.amount_vnd) FROM sponsorship_allocation a WHERE a.donation_id = d.id), 0)
           AS money_left
    FROM sponsorship_donation d
    WHERE d.status = ANY(%(statuses)s) AND d.paid_at IS NOT NULL AND d.paid_at < %(before)s
      AND NOT (d.has_redirect_consent AND d.locality_id IS NULL AND d.product = '' AND d.beneficiary_group = '')
      AND NOT EXISTS (SELECT 1 FROM sponsorship_giftexpiry x WHERE x.donation_id = d.id)
) due
WHERE money_left > 0
ORDER BY paid_at, id
LIMIT %(limit)s
"""


def _cutoff(now):
    """Gifts paid before this are due; past the list deadline, every gift is."""
    deadline = settings.CHUNGTAY_CAMPAIGN_LIST_DEADLINE
    if deadline and timezone.localdate(now) > deadline:
        return now, _("the campaign's list deadline has passed")
    days = settings.CHUNGTAY_UNMATCHED_EXPIRY_DAYS
    return now - timedelta(days=days), _("unmatched for %(days)s days") % {"days": days}


def _is_restricted(d: Donation) -> bool:
    return bool(d.locality_id or d.product or d.beneficiary_group)


@transaction.atomic
def gift_redirect(*, donation_id: int, note: str = "") -> Donation:
    """Lift a gift's restriction ("where most needed") and move its unallocated money to the
    unrestricted fund. Idempotent: an unrestricted gift is returned unchanged."""
    from . import triggers
    from .unmatch import gift_cleared_money

    d = Donation.objects.select_for_update().get(pk=donation_id)
    if not _is_restricted(d):
        return d
    old_fund = d.fund_key
    new_fund = fund_key(campaign=d.campaign)
    allocated = sum(d.allocations.values_list("amount_vnd", flat=True))
    left = gift_cleared_money(d.pk) - allocated
    if left > 0:
        ledger_post(
            key=f"redirect:{d.pk}",
            kind="redirect",
            donation=d,
            memo=note[:300] or f"{d.reference}: where most needed",
            entries=[debit(Account.DONOR_FUNDS, left, old_fund), credit(Account.DONOR_FUNDS, left, new_fund)],
        )
    # Later refunds and disputes of this gift are posted on its new fund (payments.py reads
    # donation.fund_key), where its money now is.
    Donation.objects.filter(pk=d.pk).update(locality=None, product="", beneficiary_group="", fund_key=new_fund)
    d.refresh_from_db()
    triggers.money_cleared(donation_ids=[d.pk])
    return d


def expire_unmatched(*, now=None, limit: int = 500) -> dict:
    """Beat: decide on gifts whose money stayed unmatched too long. One GiftExpiry per gift
    (unique), each gift in its own transaction; then send the pending emails. Safe to re-run."""
    now = now or timezone.now()
    before, reason = _cutoff(now)
    with connection.cursor() as cur:
        cur.execute(LEFT_SQL, {"statuses": list(CLEARED), "before": before, "limit": limit})
        due = cur.fetchall()
    counts = {"redirected": 0, "refund_offered": 0, "notified": 0}
    for pk, left in due:
        d = Donation.objects.get(pk=pk)
        with transaction.atomic():
            outcome = ExpiryOutcome.REDIRECTED if d.has_redirect_consent else ExpiryOutcome.REFUND_OFFERED
            _x, created = GiftExpiry.objects.get_or_create(
                donation=d, defaults={"outcome": outcome, "amount_vnd": left, "reason": reason[:200]}
            )
            if created and outcome == ExpiryOutcome.REDIRECTED:
                gift_redirect(donation_id=d.pk, note=f"{d.reference}: {reason}")
        if created:
            counts[outcome] += 1
    counts["notified"] = notify_pending()
    return counts


def _message(x: GiftExpiry) -> tuple[str, str]:
    d = x.donation
    amount = f"{x.amount_vnd:,}".replace(",", ".")
    if x.outcome == ExpiryOutcome.REDIRECTED:
        subject = _("Your gift %(ref)s now goes where it is most needed") % {"ref": d.reference}
        body = _(
            "%(amount)s VND of your gift %(ref)s could not be matched to a card in the place you chose "
            "(%(reason)s). As you agreed, it now goes where it is most needed."
        ) % {"amount": amount, "ref": d.reference, "reason": x.reason}
    else:
        subject = _("Your gift %(ref)s: a refund is available") % {"ref": d.reference}
        link = f"{settings.SITE_URL}/matching/unmatched/{x.token}/"
        body = _(
            "%(amount)s VND of your gift %(ref)s could not be matched to a card (%(reason)s). "
            "You can ask for a refund or let it go where it is most needed: %(link)s"
        ) % {"amount": amount, "ref": d.reference, "reason": x.reason, "link": link}
    return subject, body


def notify_pending(limit: int = 200) -> int:
    """Email donors about decisions not yet notified. notified_at is set only after a message
    was sent (guarded on notified_at IS NULL, so two workers do not both record it); a failed
    send is logged and retried by the next run."""
    sent = 0
    for x in GiftExpiry.objects.filter(notified_at__isnull=True).select_related("donation__donor")[:limit]:
        subject, body = _message(x)
        try:
            send_mail(subject, body, None, [x.donation.donor.email])
        except Exception:  # noqa: BLE001 — SMTP down: the next check retries
            logger.exception("could not email the donor of gift %s", x.donation_id)
            continue
        sent += GiftExpiry.objects.filter(pk=x.pk, notified_at__isnull=True).update(notified_at=timezone.now())
    return sent


@transaction.atomic
def donor_choose(*, expiry: GiftExpiry, choice: str, by) -> GiftExpiry:
    """The donor answers a refund offer: a refund (finance pays it) or where most needed.
    Only the gift's donor; the first answer stands (guarded in the UPDATE)."""
    from django.http import Http404

    from config.exceptions import ApplicationError

    if expiry.donation.donor_id != by.pk:
        raise Http404
    if choice not in (DonorChoice.REFUND, DonorChoice.REDIRECT):
        raise ApplicationError(_("Choose a refund or where most needed."), code="choice")
    moved = GiftExpiry.objects.filter(
        pk=expiry.pk, outcome=ExpiryOutcome.REFUND_OFFERED, donor_choice=DonorChoice.NONE
    ).update(donor_choice=choice, chosen_at=timezone.now())
    if moved and choice == DonorChoice.REDIRECT:
        Donation.objects.filter(pk=expiry.donation_id).update(has_redirect_consent=True)
        gift_redirect(donation_id=expiry.donation_id, note=f"{expiry.donation.reference}: donor chose")
    expiry.refresh_from_db()
    return expiry
