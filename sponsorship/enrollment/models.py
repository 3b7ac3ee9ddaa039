"""Enrollment models: targets, agency batches, card-list imports, rollups, reminders.
Imported at the end of sponsorship.models (Django finds models there)."""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _


class TargetType(models.TextChoices):
    HI = "hi", _("Health insurance participants")
    SI_VOLUNTARY = "si_voluntary", _("Voluntary social insurance participants")


# Card.product → target type.
PRODUCT_TYPE = {"hi_household": TargetType.HI, "si_voluntary": TargetType.SI_VOLUNTARY}


class Target(models.Model):
    """A yearly participant target of a province or commune, in either locality scheme.
    `baseline` is the count already reached when the target was recorded; gap = number − baseline
    − sponsored new enrollments."""

    locality = models.ForeignKey("beneficiaries.Locality", on_delete=models.PROTECT, related_name="+")
    year = models.PositiveSmallIntegerField(_("year"))
    type = models.CharField(_("type"), max_length=16, choices=TargetType.choices)
    number = models.BigIntegerField(_("target"))
    baseline = models.BigIntegerField(_("baseline"), default=0)
    source = models.TextField(_("source"), blank=True)

    class Meta:
        verbose_name = _("target")
        constraints = [
            models.UniqueConstraint(fields=["locality", "year", "type"], name="target_one_per_locality_year_type"),
            models.CheckConstraint(condition=Q(number__gte=0) & Q(baseline__gte=0), name="target_non_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.locality_id}:{self.year}:{self.type}={self.number}"


class BatchStatus(models.TextChoices):
    DRAFT = "draft", _("Draft")
    LISTED = "listed", _("Listed")
    SUBMITTED = "submitted", _("Submitted")
    PAID = "paid", _("Paid to the agency")
    CANCELLED = "cancelled", _("Cancelled")


BATCH_TRANSITIONS = {
    BatchStatus.DRAFT: {BatchStatus.LISTED, BatchStatus.CANCELLED},
    BatchStatus.LISTED: {BatchStatus.SUBMITTED, BatchStatus.CANCELLED},
    BatchStatus.SUBMITTED: {BatchStatus.PAID},
    BatchStatus.PAID: set(),
    BatchStatus.CANCELLED: set(),
}


class AgencyBatch(models.Model):
    """One hand-off list for the agency: a commune's (or collection agent's) cards of one product
    and period. Cards join through AgencyBatchCard (a card sits in at most one live batch)."""

    locality = models.ForeignKey("beneficiaries.Locality", on_delete=models.PROTECT, related_name="+")
    collection_agent = models.CharField(_("collection agent"), max_length=200, blank=True)
    product = models.CharField(_("product"), max_length=16)
    period = models.DateField(_("period"))  # first day of the period (month)
    status = models.CharField(_("status"), max_length=12, choices=BatchStatus.choices, default=BatchStatus.DRAFT)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    paid_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("agency batch")
        verbose_name_plural = _("agency batches")
        constraints = [models.CheckConstraint(condition=Q(status__in=BatchStatus.values), name="batch_status_valid")]

    def __str__(self) -> str:
        return f"batch {self.pk} ({self.status})"

    @property
    def reference(self) -> str:
        return f"CT-{self.pk:06d}"


class AgencyBatchCard(models.Model):
    batch = models.ForeignKey(AgencyBatch, on_delete=models.CASCADE, related_name="items")
    card = models.ForeignKey("sponsorship.Card", on_delete=models.PROTECT, related_name="batch_items")
    is_live = models.BooleanField(default=True)  # false once the batch is cancelled

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["card"], condition=Q(is_live=True), name="batchcard_one_live_batch"),
        ]

    def __str__(self) -> str:
        return f"batch {self.batch_id} card {self.card_id}"


class CardListImport(models.Model):
    """One uploaded D10a-TS card list and its outcome (per-row report in `report`)."""

    file_name = models.CharField(max_length=255)
    sha256 = models.CharField(max_length=64)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    enrolled = models.PositiveIntegerField(default=0)
    rejected = models.PositiveIntegerField(default=0)
    unchanged = models.PositiveIntegerField(default=0)
    unmatched = models.PositiveIntegerField(default=0)
    ambiguous = models.PositiveIntegerField(default=0)
    bad = models.PositiveIntegerField(default=0)
    report = models.JSONField(default=list)

    def __str__(self) -> str:
        return self.file_name


class EnrollmentRollup(models.Model):
    """Recomputed counts (never incremented): sponsored new enrollments and renewals per 2025
    locality (commune and province rows), year, type and month."""

    locality = models.ForeignKey("beneficiaries.Locality", on_delete=models.CASCADE, related_name="+")
    province = models.ForeignKey("beneficiaries.Locality", on_delete=models.CASCADE, related_name="+")
    level = models.CharField(max_length=8)
    year = models.PositiveSmallIntegerField()
    month = models.PositiveSmallIntegerField()
    type = models.CharField(max_length=16)
    new_enrollments = models.IntegerField(default=0)
    renewals = models.IntegerField(default=0)
    raised_vnd = models.BigIntegerField(default=0)  # donor share of the cards counted
    pending_vnd = models.BigIntegerField(default=0)  # donor share of cards funded but not yet enrolled

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["locality", "year", "type", "month"], name="rollup_unique_cell"),
        ]
        indexes = [models.Index(fields=["year", "type", "level", "province"], name="rollup_dash")]

    def __str__(self) -> str:
        return f"{self.locality_id}:{self.year}-{self.month}:{self.type}"


class ReminderSent(models.Model):
    """Idempotency record: one reminder run per card and threshold (60/30/7 days)."""

    card = models.ForeignKey("sponsorship.Card", on_delete=models.CASCADE, related_name="+")
    days_before = models.PositiveSmallIntegerField()
    sent_at = models.DateTimeField(auto_now_add=True)
    recipients = models.PositiveSmallIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["card", "days_before"], name="reminder_once_per_threshold")]

    def __str__(self) -> str:
        return f"card {self.card_id} −{self.days_before}d"
