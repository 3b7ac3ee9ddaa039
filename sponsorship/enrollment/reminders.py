"""Renewal reminders 60, 30 and 7 days before a card's validity ends: to the donors who funded
it (with an offer to renew the same household) and to the commune officers of its commune.
Idempotent per card and threshold (ReminderSent row claimed before sending)."""

from __future__ import annotations

import logging
from datetime import date, timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _

from donors.models import Role, User

from ..card_models import Card, CardStatus
from .models import ReminderSent

logger = logging.getLogger(__name__)

LIVE = [CardStatus.ENROLLED, CardStatus.ACTIVE, CardStatus.EXPIRING]


def _recipients(card: Card) -> tuple[list[str], list[str]]:
    donors = sorted({e for e in card.allocations.values_list("donation__donor__email", flat=True) if e})
    officers = sorted(
        User.objects.filter(role=Role.COMMUNE_OFFICER, is_active=True)
        .filter(scopes__locality__in=[card.locality_id, card.locality.province_id])
        .values_list("email", flat=True)
        .distinct()
    )
    return donors, officers


def _send(card, subject: str, left: int, donors: list[str], officers: list[str]) -> int:
    sent = 0
    if donors:
        body = _(
            "A health insurance card you funded (%(locality)s) is valid until %(valid_to)s. "
            "You can renew the same household's card from your gifts page."
        ) % {"locality": card.locality.name, "valid_to": card.valid_to.strftime("%d/%m/%Y")}
        sent += send_mail(subject, body, None, donors)
    if officers:
        body = _("Card %(card)s of household %(household)s is valid until %(valid_to)s.") % {
            "card": card.card_code,
            "household": card.household_id,
            "valid_to": card.valid_to.strftime("%d/%m/%Y"),
        }
        sent += send_mail(subject, body, None, officers)
    return sent


def send_renewal_reminders(today: date | None = None) -> int:
    """Send the reminders due today or missed (a card whose end is within a threshold and has no
    reminder for it yet gets one). Returns the number of messages sent."""
    today = today or date.today()
    sent = 0
    for days in sorted(settings.ENROLLMENT_REMINDER_DAYS, reverse=True):
        due = Card.objects.filter(
            status__in=LIVE, valid_to__gte=today, valid_to__lte=today + timedelta(days=days)
        ).select_related("locality")
        for card in due.iterator():
            # Only the tightest threshold reached is sent (no 60-day mail on the 7-day eve).
            left = (card.valid_to - today).days
            tightest = min(d for d in settings.ENROLLMENT_REMINDER_DAYS if left <= d)
            if tightest != days:
                continue
            try:
                with transaction.atomic():
                    claim = ReminderSent.objects.create(card=card, days_before=days)
            except IntegrityError:
                continue
            donors, officers = _recipients(card)
            subject = _("A sponsored card expires in %(days)d days") % {"days": left}
            try:
                sent += _send(card, subject, left, donors, officers)
            except Exception:
                # The claim stops a second mail; one that never left must not block the retry
                # of the next run, so the claim goes with it.
                logger.exception("renewal reminder for card %s failed; will retry", card.pk)
                claim.delete()
                continue
            claim.recipients = len(donors) + len(officers)
            claim.save(update_fields=["recipients"])
    return sent
