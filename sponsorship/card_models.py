"""Sponsored cards: what donors' money becomes. Matching creates a Card in `funded` when the
donor share of one member's card is fully allocated; enrollment moves it through the agency's
lifecycle. Imported into sponsorship.models (Django finds models there)."""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _


class CardStatus(models.TextChoices):
    FUNDED = "funded", _("Funded")
    LISTED = "listed", _("Listed in an agency batch")
    SUBMITTED = "submitted", _("Submitted to the agency")
    ENROLLED = "enrolled", _("Enrolled")
    ACTIVE = "active", _("Active")
    EXPIRING = "expiring", _("Expiring")
    EXPIRED = "expired", _("Expired")
    RENEWED = "renewed", _("Renewed")
    REJECTED = "rejected", _("Rejected by the agency")
    UNMATCHED = "unmatched", _("Unmatched (money returned to the pool)")


# Cards whose money has not reached the agency: a refund may still un-match them.
NOT_SENT_STATUSES = {CardStatus.FUNDED, CardStatus.LISTED}
# A member holds at most one card in these states per product and period.
LIVE_STATUSES = [s for s in CardStatus.values if s not in (CardStatus.REJECTED, CardStatus.UNMATCHED)]

CARD_TRANSITIONS: dict[str, set[str]] = {
    CardStatus.FUNDED: {CardStatus.LISTED, CardStatus.UNMATCHED},
    CardStatus.LISTED: {CardStatus.FUNDED, CardStatus.SUBMITTED, CardStatus.UNMATCHED},  # batch cancelled
    CardStatus.SUBMITTED: {CardStatus.ENROLLED, CardStatus.REJECTED},
    CardStatus.ENROLLED: {CardStatus.ACTIVE, CardStatus.EXPIRING, CardStatus.EXPIRED},
    CardStatus.ACTIVE: {CardStatus.EXPIRING, CardStatus.EXPIRED, CardStatus.RENEWED},
    CardStatus.EXPIRING: {CardStatus.EXPIRED, CardStatus.RENEWED},
    CardStatus.EXPIRED: {CardStatus.RENEWED},
    CardStatus.RENEWED: set(),
    CardStatus.REJECTED: set(),
    CardStatus.UNMATCHED: set(),
}


class Card(models.Model):
    """One member's sponsored card for one product and period, priced when it was funded.
    The price is a snapshot: a later rate change does not re-price a period already paid."""

    member = models.ForeignKey("beneficiaries.Member", on_delete=models.PROTECT, related_name="cards")
    household = models.ForeignKey("beneficiaries.Household", on_delete=models.PROTECT, related_name="cards")
    # Denormalised from the member for scoping, rollups and the public pages. No index of its
    # own: card_loc_status (locality, status) serves every lookup by locality.
    locality = models.ForeignKey("beneficiaries.Locality", on_delete=models.PROTECT, related_name="+", db_index=False)
    product = models.CharField(_("product"), max_length=16)
    group = models.CharField(_("group"), max_length=32, blank=True)
    months = models.PositiveSmallIntegerField(_("months"))
    period_start = models.DateField(_("requested start"))
    premium_vnd = models.BigIntegerField(_("premium (VND)"))
    state_share_vnd = models.BigIntegerField(_("state share (VND)"))
    province_share_vnd = models.BigIntegerField(_("province share (VND)"), default=0)
    donor_share_vnd = models.BigIntegerField(_("donor share (VND)"))
    ladder_position = models.PositiveSmallIntegerField(null=True, blank=True)
    pricing_schedule_id = models.BigIntegerField(null=True, blank=True)
    pricing_rule_ids = models.JSONField(default=list, blank=True)
    status = models.CharField(_("status"), max_length=12, choices=CardStatus.choices, default=CardStatus.FUNDED)
    # Set from the agency's card list (D10a-TS); the platform never invents them.
    card_code = models.CharField(_("card code"), max_length=20, blank=True)
    valid_from = models.DateField(_("valid from"), null=True, blank=True)
    valid_to = models.DateField(_("valid to"), null=True, blank=True)
    rejection_reason = models.TextField(_("rejection reason"), blank=True)
    is_flagged = models.BooleanField(_("flagged"), default=False)  # money refunded after sending
    flag_reason = models.TextField(blank=True)
    # Indexed only where set (card_renewal_of, partial): a funded card is not a renewal, and the
    # matcher writes a million of them.
    renewal_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="renewals", db_index=False
    )
    funded_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("sponsored card")
        verbose_name_plural = _("sponsored cards")
        constraints = [
            models.CheckConstraint(condition=Q(status__in=CardStatus.values), name="card_status_valid"),
            models.CheckConstraint(
                condition=Q(donor_share_vnd__gte=0) & Q(donor_share_vnd__lte=models.F("premium_vnd")),
                name="card_donor_share_within_premium",
            ),
            # Last line of defence against double funding by concurrent matching workers.
            models.UniqueConstraint(
                fields=["member", "product", "period_start"],
                condition=Q(status__in=LIVE_STATUSES),
                name="card_one_live_per_member_period",
            ),
        ]
        indexes = [
            models.Index(fields=["locality", "status"], name="card_loc_status"),
            models.Index(fields=["renewal_of"], name="card_renewal_of", condition=Q(renewal_of__isnull=False)),
        ]

    def __str__(self) -> str:
        return f"{self.member_id}:{self.product}:{self.period_start}"

    def history(self) -> list[dict]:
        """The card's status history, oldest first: {at, from_status, to_status, by, reason}.
        The first entry (created `funded`) is the card itself: the matcher writes no history row
        for it (a million funded cards would be a million rows saying the same thing), so it is
        derived from `funded_at` and the matching run of its allocations. Every later change is
        a CardTransition row (card_transition)."""
        run_id = self.allocations.order_by("run_id").values_list("run_id", flat=True).first()
        first = {
            "at": self.funded_at,
            "from_status": "",
            "to_status": CardStatus.FUNDED,
            "by": None,
            "reason": f"matching run {run_id}" if run_id else "",
        }
        later = [
            {"at": t.at, "from_status": t.from_status, "to_status": t.to_status, "by": t.by, "reason": t.reason}
            for t in self.transitions.select_related("by")
        ]
        return [first, *later]


class CardTransition(models.Model):
    """Append-only history of a card's status (who, when, from, to, why)."""

    card = models.ForeignKey(Card, on_delete=models.CASCADE, related_name="transitions")
    from_status = models.CharField(max_length=12)
    to_status = models.CharField(max_length=12)
    by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    reason = models.TextField(blank=True)
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return f"{self.card_id}: {self.from_status} → {self.to_status}"
