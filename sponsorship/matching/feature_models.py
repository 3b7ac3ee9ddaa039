"""Matching features beyond the core run: holds, expiry decisions, corporate match offers.
Imported into sponsorship.models (Django finds models there)."""

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _


class HoldStatus(models.TextChoices):
    ACTIVE = "active", _("Active")
    CONSUMED = "consumed", _("Funded by the holder")
    RELEASED = "released", _("Released")
    EXPIRED = "expired", _("Expired")


class Hold(models.Model):
    """A donor who picked a commune or a household holds that need while their money clears:
    others' money cannot take it, the holder's money funds it first. Bounded in time
    (minutes for card payments, days for bank transfers); beat releases expired holds.
    A commune hold covers the commune's highest-priority households up to `amount_vnd`."""

    donation = models.ForeignKey("sponsorship.Donation", on_delete=models.CASCADE, related_name="holds")
    household = models.ForeignKey(
        "beneficiaries.Household", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    locality = models.ForeignKey(
        "beneficiaries.Locality", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    province = models.ForeignKey("beneficiaries.Locality", on_delete=models.PROTECT, related_name="+")
    amount_vnd = models.BigIntegerField(_("amount held (VND)"))
    status = models.CharField(_("status"), max_length=10, choices=HoldStatus.choices, default=HoldStatus.ACTIVE)
    expires_at = models.DateTimeField(_("expires"))
    created_at = models.DateTimeField(auto_now_add=True)
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("hold")
        verbose_name_plural = _("holds")
        constraints = [
            models.CheckConstraint(condition=Q(status__in=HoldStatus.values), name="hold_status_valid"),
            models.CheckConstraint(
                condition=Q(household__isnull=False) | Q(locality__isnull=False), name="hold_has_target"
            ),
            models.CheckConstraint(condition=Q(amount_vnd__gt=0), name="hold_amount_positive"),
            # One live hold per pledge: a double click does not hold twice.
            models.UniqueConstraint(fields=["donation"], condition=Q(status="active"), name="hold_one_active"),
        ]
        indexes = [models.Index(fields=["province", "status"], name="hold_province_status")]

    def __str__(self) -> str:
        return f"hold {self.pk} ({self.status})"


class ExpiryOutcome(models.TextChoices):
    REDIRECTED = "redirected", _("Moved to where most needed")
    REFUND_OFFERED = "refund_offered", _("Refund offered")


class DonorChoice(models.TextChoices):
    NONE = "", _("No answer yet")
    REFUND = "refund", _("Refund requested")
    REDIRECT = "redirect", _("Where most needed")


class GiftExpiry(models.Model):
    """Money of a gift left unmatched too long (or past the campaign's list deadline): moved
    to "where most needed" when the donor agreed, otherwise a refund offered. One per gift.
    `notified_at` is set only after the email was sent."""

    donation = models.OneToOneField("sponsorship.Donation", on_delete=models.PROTECT, related_name="expiry")
    outcome = models.CharField(_("outcome"), max_length=16, choices=ExpiryOutcome.choices)
    amount_vnd = models.BigIntegerField(_("amount (VND)"))
    reason = models.CharField(_("reason"), max_length=200)
    donor_choice = models.CharField(_("donor's choice"), max_length=10, choices=DonorChoice.choices, blank=True)
    chosen_at = models.DateTimeField(null=True, blank=True)
    token = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    notified_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("unmatched money decision")
        verbose_name_plural = _("unmatched money decisions")
        constraints = [
            models.CheckConstraint(condition=Q(outcome__in=ExpiryOutcome.values), name="giftexpiry_outcome_valid"),
            models.CheckConstraint(condition=Q(amount_vnd__gt=0), name="giftexpiry_amount_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.donation_id}: {self.outcome}"


class MatchOffer(models.Model):
    """A business matches individual gifts at `ratio` (1 = 1:1) up to `cap_vnd`, optionally
    only for gifts to the localities it chose. `used_vnd` never exceeds the cap: the CHECK
    below and the conditional UPDATE in offers.py."""

    business = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="match_offers")
    name = models.CharField(_("name"), max_length=200)
    ratio = models.DecimalField(_("ratio"), max_digits=6, decimal_places=3, default=1)
    cap_vnd = models.BigIntegerField(_("cap (VND)"))
    used_vnd = models.BigIntegerField(_("used (VND)"), default=0)
    localities = models.ManyToManyField("beneficiaries.Locality", blank=True, related_name="+")
    is_active = models.BooleanField(_("active"), default=True)
    starts_at = models.DateTimeField(_("starts"))
    ends_at = models.DateTimeField(_("ends"), null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("match offer")
        verbose_name_plural = _("match offers")
        constraints = [
            models.CheckConstraint(condition=Q(ratio__gt=0), name="matchoffer_ratio_positive"),
            models.CheckConstraint(
                condition=Q(used_vnd__gte=0) & Q(used_vnd__lte=models.F("cap_vnd")), name="matchoffer_within_cap"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class OfferMatch(models.Model):
    """One individual gift matched by one offer: the business's matched gift (same
    restrictions) and its amount. Unique per (offer, gift): a gift is matched once."""

    offer = models.ForeignKey(MatchOffer, on_delete=models.PROTECT, related_name="matches")
    source = models.ForeignKey("sponsorship.Donation", on_delete=models.PROTECT, related_name="offer_matches")
    matched = models.OneToOneField("sponsorship.Donation", on_delete=models.PROTECT, related_name="matched_from")
    amount_vnd = models.BigIntegerField(_("amount (VND)"))
    # Given back when the gift it matched was refunded or lost in a dispute (offers.py,
    # `match_shrink`): the business owes amount − returned, and the cap gets it back.
    returned_vnd = models.BigIntegerField(_("given back (VND)"), default=0)
    # Taken back up when the gift got its money back (a dispute won: offers.py,
    # `matches_regrow`), in total over the match's life. returned − restored moves both ways;
    # each of the two only grows, so the ledger keys built from them never repeat.
    restored_vnd = models.BigIntegerField(_("matched again (VND)"), default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["offer", "source"], name="offermatch_once_per_gift"),
            models.CheckConstraint(condition=Q(amount_vnd__gt=0), name="offermatch_amount_positive"),
            models.CheckConstraint(
                condition=Q(returned_vnd__gte=0) & Q(returned_vnd__lte=models.F("amount_vnd")),
                name="offermatch_returned_within_amount",
            ),
            models.CheckConstraint(condition=Q(restored_vnd__gte=0), name="offermatch_restored_not_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.offer_id}: {self.source_id} → {self.matched_id}"

    @property
    def current_vnd(self) -> int:
        return self.amount_vnd - self.returned_vnd


class MatchSettlement(models.Model):
    """A business paying what its offer owes (match pledges), by bank transfer (VietQR, found by
    the statement matching) or by card (Stripe). The payment itself is an ordinary gift row
    (`donation`: the business's, unrestricted, with its own reference), so the existing bank
    and Stripe paths take it unchanged; matching/settlement.py then moves its money from
    donor_funds to match_pledges. Money beyond what the offer owed stays a gift of the
    business "where most needed"."""

    offer = models.ForeignKey(MatchOffer, on_delete=models.PROTECT, related_name="settlements")
    donation = models.OneToOneField("sponsorship.Donation", on_delete=models.PROTECT, related_name="match_settlement")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("match pledge settlement")
        verbose_name_plural = _("match pledge settlements")

    def __str__(self) -> str:
        return f"{self.offer_id}: {self.donation_id}"
