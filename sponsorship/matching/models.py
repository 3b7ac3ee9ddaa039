"""Matching data: the priority rule (versioned, admin-editable), each run's record, and each
allocation of one gift's money to one card with its explanation. Imported into
sponsorship.models (Django finds models there)."""

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _


def default_poverty_weights() -> dict:
    return {"poor": 100, "near_poor": 60, "average_farming": 30, "none": 0}


class MatchingRule(models.Model):
    """Priority weights as data. score = gap_weight × the commune's target gap (%) +
    province_gap_weight × the province's target gap (%) + months_weight × months without cover
    (0–12) + poverty_weights[class] + waiting_weight × days waiting. A gap is how far the
    locality is behind its yearly target, in percent of the target (0 without a target). The
    highest active version is used; each allocation records the version it was scored with."""

    version = models.PositiveIntegerField(_("version"), unique=True)
    gap_weight = models.DecimalField(_("commune target-gap weight"), max_digits=8, decimal_places=3, default=1)
    province_gap_weight = models.DecimalField(
        _("province target-gap weight"), max_digits=8, decimal_places=3, default=1
    )
    months_weight = models.DecimalField(_("months-uncovered weight"), max_digits=8, decimal_places=3, default=5)
    poverty_weights = models.JSONField(_("poverty class weights"), default=default_poverty_weights)
    waiting_weight = models.DecimalField(_("waiting-time weight (per day)"), max_digits=8, decimal_places=3, default=1)
    is_active = models.BooleanField(_("active"), default=True)
    note = models.CharField(_("note"), max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("matching rule")
        verbose_name_plural = _("matching rules")
        ordering = ["-version"]

    def __str__(self) -> str:
        return f"v{self.version}"


class RunStatus(models.TextChoices):
    RUNNING = "running", _("Running")
    DONE = "done", _("Done")
    SKIPPED = "skipped", _("Skipped (shard busy)")
    FAILED = "failed", _("Failed")


class MatchingRun(models.Model):
    province = models.ForeignKey("beneficiaries.Locality", null=True, on_delete=models.PROTECT, related_name="+")
    rule = models.ForeignKey(MatchingRule, null=True, on_delete=models.PROTECT, related_name="runs")
    status = models.CharField(_("status"), max_length=8, choices=RunStatus.choices, default=RunStatus.RUNNING)
    started_at = models.DateTimeField(_("started"), auto_now_add=True)
    duration_ms = models.PositiveIntegerField(_("duration (ms)"), default=0)
    money_in_vnd = models.BigIntegerField(_("money available (VND)"), default=0)
    money_allocated_vnd = models.BigIntegerField(_("money allocated (VND)"), default=0)
    money_left_vnd = models.BigIntegerField(_("money left (VND)"), default=0)
    needs = models.PositiveIntegerField(_("members waiting"), default=0)
    cards_funded = models.PositiveIntegerField(_("cards funded"), default=0)
    allocations = models.PositiveIntegerField(_("allocations"), default=0)
    # The run stopped at CHUNGTAY_MATCHING_MAX_HOUSEHOLDS_PER_RUN: the task queued the next one.
    capped = models.BooleanField(_("stopped at the per-run cap"), default=False)
    # The lowest household score unrestricted money could reach in this run (national.py): the
    # provinces' waiting queues together needed all of it above this score. Null: no cutoff
    # (no unrestricted money, or enough for every queue).
    unrestricted_cutoff = models.DecimalField(
        _("unrestricted money: lowest score reached"), max_digits=14, decimal_places=1, null=True, blank=True
    )
    error = models.TextField(blank=True)

    class Meta:
        verbose_name = _("matching run")
        verbose_name_plural = _("matching runs")
        ordering = ["-started_at", "-id"]
        constraints = [models.CheckConstraint(condition=Q(status__in=RunStatus.values), name="matchingrun_status")]

    def __str__(self) -> str:
        return f"run {self.pk} ({self.province_id})"


class Allocation(models.Model):
    """Part of one gift paying part of one card's donor share. The SQL trigger of migration
    0004_matching checks, per statement, that a card's allocations never exceed its donor
    share and a gift's never exceed its cleared money."""

    # No index on run (nothing looks allocations up by run; a run is deleted only by the
    # benchmark) nor on donation alone (allocation_donation_card_unique starts with it).
    run = models.ForeignKey(MatchingRun, on_delete=models.PROTECT, related_name="allocation_rows", db_index=False)
    donation = models.ForeignKey(
        "sponsorship.Donation", on_delete=models.PROTECT, related_name="allocations", db_index=False
    )
    card = models.ForeignKey("sponsorship.Card", on_delete=models.PROTECT, related_name="allocations")
    fund = models.CharField(max_length=200)
    amount_vnd = models.BigIntegerField(_("amount (VND)"))
    score = models.DecimalField(_("priority score"), max_digits=14, decimal_places=3)
    rule_version = models.PositiveIntegerField(_("rule version"))
    # gap (% behind target), months_uncovered, poverty_class, waiting_days: "why this household, why now".
    components = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("allocation")
        verbose_name_plural = _("allocations")
        constraints = [
            models.CheckConstraint(condition=Q(amount_vnd__gt=0), name="allocation_amount_positive"),
            models.UniqueConstraint(fields=["donation", "card"], name="allocation_donation_card_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.donation_id}→{self.card_id}: {self.amount_vnd}"


class MatchingDemand(models.Model):
    """A province's waiting queue for a product as its last matching run left it: donor shares
    waiting by household score (`curve`: [[score rounded to 0.1, VND], …], highest first). The
    runs of every province read all of them to decide how far down the national priority order
    unrestricted money reaches (national.py)."""

    province = models.ForeignKey("beneficiaries.Locality", on_delete=models.CASCADE, related_name="+")
    product = models.CharField(max_length=32)
    curve = models.JSONField(default=list)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("matching demand")
        verbose_name_plural = _("matching demands")
        constraints = [models.UniqueConstraint(fields=["province", "product"], name="matchingdemand_province_product")]

    def __str__(self) -> str:
        return f"demand {self.province_id} {self.product}"
