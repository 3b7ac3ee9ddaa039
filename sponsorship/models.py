"""Money: gifts (donations), card payments, the Stripe event inbox, the double-entry ledger,
bank statements and reconciliation. Every amount is an integer number of đồng (VND has no
minor unit), stored in BigIntegerField."""

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _


class Product(models.TextChoices):
    HI_HOUSEHOLD = "hi_household", _("Household health-insurance card")
    SI_VOLUNTARY = "si_voluntary", _("Voluntary social insurance")


class Appearance(models.TextChoices):
    NAMED = "named", _("Show my name")
    COMPANY = "company", _("Show my company")
    ANONYMOUS = "anonymous", _("Anonymous")


class Method(models.TextChoices):
    CARD = "card", _("Card (Stripe)")
    BANK = "bank", _("Bank transfer (VietQR)")


# A business's match of another gift (matching/offers.py): written by match offers only, so it
# is not a choice a donor sees (Method.choices feeds the donate form and the API).
METHOD_MATCH = "match"


class DonationStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    REQUIRES_ACTION = "requires_action", _("Waiting for 3-D Secure")
    PARTIALLY_PAID = "partially_paid", _("Partially paid")
    SUCCEEDED = "succeeded", _("Paid")
    FAILED = "failed", _("Failed")
    CANCELED = "canceled", _("Canceled")
    PARTIALLY_REFUNDED = "partially_refunded", _("Partially refunded")
    REFUNDED = "refunded", _("Refunded")
    DISPUTED = "disputed", _("Disputed")


class Donation(models.Model):
    """One gift. `amount_vnd` is what the donor pledged; received/refunded are recomputed by
    the services from payments, refunds and disputes, never incremented blindly."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    donor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="donations")
    method = models.CharField(_("method"), max_length=8, choices=Method.choices)
    amount_vnd = models.BigIntegerField(_("amount (VND)"))
    cards_count = models.PositiveIntegerField(_("number of cards"), null=True, blank=True)
    locality = models.ForeignKey(
        "beneficiaries.Locality", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    product = models.CharField(_("product"), max_length=16, choices=Product.choices, blank=True)
    beneficiary_group = models.CharField(_("beneficiary group"), max_length=16, blank=True)
    campaign = models.CharField(_("campaign"), max_length=64, blank=True)
    # The donor agreed that money left unmatched may go "where most needed" (matching/expiry.py).
    has_redirect_consent = models.BooleanField(_("may go where most needed"), default=False)
    appearance = models.CharField(_("appear as"), max_length=12, choices=Appearance.choices)
    status = models.CharField(_("status"), max_length=20, choices=DonationStatus.choices, default="pending")
    fund_key = models.CharField(max_length=200, editable=False)
    idempotency_key = models.CharField(max_length=100, blank=True)
    # Bank transfers: the memo the donor types; cards: also shown on receipts.
    reference = models.CharField(_("reference"), max_length=25, unique=True)
    amount_received_vnd = models.BigIntegerField(default=0)
    amount_refunded_vnd = models.BigIntegerField(default=0)
    fee_vnd = models.BigIntegerField(default=0)
    stripe_customer_id = models.CharField(max_length=64, blank=True)
    stripe_setup_intent_id = models.CharField(max_length=64, blank=True)
    stripe_payment_intent_id = models.CharField(max_length=64, null=True, blank=True, unique=True)
    stripe_charge_id = models.CharField(max_length=64, null=True, blank=True, unique=True)
    failure_message = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    paid_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("donation")
        verbose_name_plural = _("donations")
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(condition=Q(status__in=DonationStatus.values), name="donation_status_valid"),
            models.CheckConstraint(
                condition=Q(method__in=[*Method.values, METHOD_MATCH]), name="donation_method_valid"
            ),
            models.CheckConstraint(condition=Q(appearance__in=Appearance.values), name="donation_appearance_valid"),
            models.CheckConstraint(condition=Q(product="") | Q(product__in=Product.values), name="donation_product"),
            models.CheckConstraint(condition=Q(amount_vnd__gt=0), name="donation_amount_positive"),
            models.CheckConstraint(
                condition=Q(amount_received_vnd__gte=0)
                & Q(amount_refunded_vnd__gte=0)
                & Q(amount_refunded_vnd__lte=models.F("amount_received_vnd")),
                name="donation_received_refunded_sane",
            ),
            models.UniqueConstraint(
                fields=["donor", "idempotency_key"],
                condition=~Q(idempotency_key=""),
                name="donation_idempotency_per_donor",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.reference} · {self.amount_vnd} VND"

    @property
    def is_paid(self) -> bool:
        return self.amount_received_vnd > 0


class DonationHistory(models.Model):
    donation = models.ForeignKey(Donation, on_delete=models.CASCADE, related_name="history")
    from_status = models.CharField(max_length=20)
    to_status = models.CharField(max_length=20)
    note = models.CharField(max_length=300, blank=True)
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return f"{self.donation_id}: {self.from_status} → {self.to_status}"


class RefundStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    SUCCEEDED = "succeeded", _("Succeeded")
    FAILED = "failed", _("Failed")


class Refund(models.Model):
    """A refund asked for by finance staff (row first, then Stripe) or started at Stripe."""

    donation = models.ForeignKey(Donation, on_delete=models.PROTECT, related_name="refunds")
    amount_vnd = models.BigIntegerField()
    status = models.CharField(max_length=12, choices=RefundStatus.choices, default="pending")
    stripe_refund_id = models.CharField(max_length=64, null=True, blank=True, unique=True)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(amount_vnd__gt=0), name="refund_amount_positive"),
            models.CheckConstraint(condition=Q(status__in=RefundStatus.values), name="refund_status_valid"),
        ]

    def __str__(self) -> str:
        return f"refund {self.amount_vnd} VND ({self.status})"


class Dispute(models.Model):
    donation = models.ForeignKey(Donation, on_delete=models.PROTECT, related_name="disputes")
    stripe_dispute_id = models.CharField(max_length=64, unique=True)
    amount_vnd = models.BigIntegerField()
    status = models.CharField(max_length=32)
    is_funds_withdrawn = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.stripe_dispute_id


class StripeEventStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    PROCESSED = "processed", _("Processed")
    IGNORED = "ignored", _("Ignored")
    FAILED = "failed", _("Failed")


class StripeEvent(models.Model):
    """The inbox: every verified webhook (or event fetched by the reconciler), raw, once."""

    stripe_event_id = models.CharField(max_length=80, unique=True)
    type = models.CharField(max_length=80)
    payload = models.JSONField()
    status = models.CharField(max_length=12, choices=StripeEventStatus.choices, default="pending")
    error = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0)
    source = models.CharField(max_length=12, default="webhook")
    received_at = models.DateTimeField(auto_now_add=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["status", "id"], name="stripeevent_status_id")]
        constraints = [
            models.CheckConstraint(condition=Q(status__in=StripeEventStatus.values), name="stripeevent_status")
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.stripe_event_id}"


# --- Ledger -----------------------------------------------------------------------------------


class Account(models.TextChoices):
    STRIPE_CLEARING = "stripe_clearing", _("Stripe clearing")
    BANK_CLEARING = "bank_clearing", _("Bank clearing")
    FEES = "fees", _("Fees")
    DONOR_FUNDS = "donor_funds", _("Donor funds")
    ALLOCATED_TO_CARDS = "allocated_to_cards", _("Allocated to cards")
    REMITTED_TO_AGENCY = "remitted_to_agency", _("Remitted to the agency")
    REFUNDS = "refunds", _("Refunds payable")
    # What businesses owe for gifts their match offers matched (matching/offers.py).
    MATCH_PLEDGES = "match_pledges", _("Match pledges receivable")


# Accounts whose natural balance is a credit (negative in our signed convention).
# remitted_to_agency is credited when the money leaves for the agency (batch_mark_paid), so it
# is read on its credit side; read as a debit account every remittance raised a false alarm.
CREDIT_NORMAL = {Account.DONOR_FUNDS, Account.ALLOCATED_TO_CARDS, Account.REFUNDS, Account.REMITTED_TO_AGENCY}
# Accounts carrying a fund (restriction) dimension.
FUND_ACCOUNTS = {Account.DONOR_FUNDS, Account.ALLOCATED_TO_CARDS}


class LedgerTransaction(models.Model):
    key = models.CharField(max_length=200, unique=True)
    kind = models.CharField(max_length=32)
    memo = models.CharField(max_length=300, blank=True)
    donation = models.ForeignKey(Donation, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.key


class LedgerEntry(models.Model):
    """Signed: debit positive, credit negative. A transaction's entries sum to zero (checked
    by a deferred constraint trigger in PostgreSQL, see migration 0002)."""

    transaction = models.ForeignKey(LedgerTransaction, on_delete=models.PROTECT, related_name="entries")
    account = models.CharField(max_length=24, choices=Account.choices)
    fund = models.CharField(max_length=200, blank=True)
    amount = models.BigIntegerField()

    class Meta:
        indexes = [models.Index(fields=["account", "fund"], name="ledgerentry_account_fund")]
        constraints = [
            models.CheckConstraint(condition=~Q(amount=0), name="ledgerentry_amount_nonzero"),
            models.CheckConstraint(condition=Q(account__in=Account.values), name="ledgerentry_account_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.account}[{self.fund}] {self.amount}"


class LedgerAlarm(models.Model):
    check_name = models.CharField(max_length=64)
    message = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.check_name}: {self.message}"


# --- Bank transfers ---------------------------------------------------------------------------


class BankStatement(models.Model):
    file_name = models.CharField(max_length=200)
    uploaded_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.PROTECT)
    uploaded_at = models.DateTimeField(auto_now_add=True)
    lines_total = models.PositiveIntegerField(default=0)
    lines_new = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return self.file_name


class LineStatus(models.TextChoices):
    UNMATCHED = "unmatched", _("Unmatched")
    MATCHED = "matched", _("Matched")
    IGNORED = "ignored", _("Ignored")


class BankStatementLine(models.Model):
    """One credit line. The fingerprint (date, amount, bank reference, description,
    counter-account) is unique: an overlapping statement uploaded again adds nothing."""

    statement = models.ForeignKey(BankStatement, on_delete=models.PROTECT, related_name="lines")
    fingerprint = models.CharField(max_length=64, unique=True)
    booked_on = models.DateField()
    amount_vnd = models.BigIntegerField()
    description = models.TextField(blank=True)
    bank_reference = models.CharField(max_length=64, blank=True)
    counter_account = models.CharField(max_length=120, blank=True)
    status = models.CharField(max_length=12, choices=LineStatus.choices, default="unmatched")
    donation = models.ForeignKey(Donation, null=True, blank=True, on_delete=models.PROTECT, related_name="lines")
    match_note = models.CharField(max_length=200, blank=True)
    # Indexed only where set (finance matched by hand): the Celery matcher leaves it NULL.
    matched_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    matched_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["booked_on", "id"]
        # Matching rewrites every line it matches (status, gift, note), and such an update
        # writes a new entry into every index of the table whose predicate the new row meets.
        # The queue index holds the lines still to handle only (the claim and the unmatched
        # or ignored lists), the hand-matched index only hand-matched lines: a line matched
        # by the job lands in neither (migration 0011).
        indexes = [
            models.Index(fields=["status", "id"], name="bankline_open_status_id", condition=~Q(status="matched")),
            models.Index(fields=["matched_by"], name="bankline_matched_by", condition=Q(matched_by__isnull=False)),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(status__in=LineStatus.values), name="bankline_status_valid"),
            models.CheckConstraint(
                condition=Q(status="matched", donation__isnull=False) | ~Q(status="matched"),
                name="bankline_matched_has_donation",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.booked_on} {self.amount_vnd} {self.description[:40]}"


# --- Reconciliation ---------------------------------------------------------------------------


class ReconcileCursor(models.Model):
    name = models.CharField(max_length=40, unique=True)
    created_gte = models.BigIntegerField(default=0)  # unix time of the newest event seen
    starting_after = models.CharField(max_length=80, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return self.name


class Discrepancy(models.Model):
    kind = models.CharField(max_length=40)
    stripe_object_id = models.CharField(max_length=80)
    donation = models.ForeignKey(Donation, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    details = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["kind", "stripe_object_id"], name="discrepancy_kind_object_unique")
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.stripe_object_id}"


class Receipt(models.Model):
    donation = models.OneToOneField(Donation, on_delete=models.PROTECT, related_name="receipt")
    number = models.CharField(max_length=32, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    emailed_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return self.number


from .card_models import Card, CardStatus, CardTransition  # noqa: E402,F401  (Django finds models here)
from .enrollment import models as enrollment_models  # noqa: E402,F401  (enrollment, issue 6)
from .matching.feature_models import GiftExpiry, Hold, MatchOffer, MatchSettlement, OfferMatch  # noqa: E402,F401
from .matching.models import Allocation, MatchingDemand, MatchingRule, MatchingRun, RunStatus  # noqa: E402,F401
