"""Localities of both schemes. Codes collide across schemes (ward 4 is Trúc Bạch in the
legacy list and Ba Đình in 2025), so every reference is to a row keyed by (scheme, level,
code), never to a bare code."""

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class Scheme(models.TextChoices):
    CURRENT = "2025", _("2025 scheme (34 provinces, no districts)")
    LEGACY = "legacy", _("Legacy scheme (63 provinces)")


class Level(models.TextChoices):
    PROVINCE = "province", _("Province")
    DISTRICT = "district", _("District")
    COMMUNE = "commune", _("Commune")


class Locality(models.Model):
    scheme = models.CharField(_("scheme"), max_length=8, choices=Scheme.choices)
    level = models.CharField(_("level"), max_length=8, choices=Level.choices)
    code = models.PositiveIntegerField(_("code"))
    name = models.CharField(_("name"), max_length=120)
    # Lower-case, no diacritics, đ → d: "ha tinh" finds Hà Tĩnh.
    name_ascii = models.CharField(max_length=120, db_index=True, editable=False)
    division_type = models.CharField(_("division type"), max_length=40)
    codename = models.CharField(max_length=120)
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="children")
    # The province of this locality (itself for a province): scoping is one indexed filter.
    province = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="+", db_index=True
    )
    successors = models.ManyToManyField(
        "self",
        through="LocalityMapping",
        symmetrical=False,
        related_name="predecessors",
        blank=True,
    )

    class Meta:
        verbose_name = _("locality")
        verbose_name_plural = _("localities")
        ordering = ["scheme", "level", "code"]
        constraints = [
            models.UniqueConstraint(fields=["scheme", "level", "code"], name="locality_scheme_level_code"),
            models.CheckConstraint(condition=models.Q(scheme__in=Scheme.values), name="locality_scheme_valid"),
            models.CheckConstraint(condition=models.Q(level__in=Level.values), name="locality_level_valid"),
            # The 2025 scheme has no districts.
            models.CheckConstraint(
                condition=~models.Q(scheme="2025", level="district"), name="locality_no_district_2025"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_province(self) -> bool:
        return self.level == Level.PROVINCE


class LocalityMapping(models.Model):
    """Legacy unit → 2025 unit. Many-to-many: 441 old wards were split between new ones."""

    legacy = models.ForeignKey(Locality, on_delete=models.CASCADE, related_name="mappings_out")
    current = models.ForeignKey(Locality, on_delete=models.CASCADE, related_name="mappings_in")

    class Meta:
        verbose_name = _("locality mapping")
        verbose_name_plural = _("locality mappings")
        constraints = [models.UniqueConstraint(fields=["legacy", "current"], name="localitymapping_unique")]

    def __str__(self) -> str:
        return f"{self.legacy} → {self.current}"


# --- Registry ------------------------------------------------------------------------------


class PovertyClass(models.TextChoices):
    POOR = "poor", _("Poor household")
    NEAR_POOR = "near_poor", _("Near-poor household")
    AVERAGE_FARMING = "average_farming", _("Average-living farming, forestry or fishery household")
    NONE = "none", _("None")


class Household(models.Model):
    """A household of the 2025 scheme's commune, with its poverty class and certificate."""

    # No index of its own: household_locality_ref and household_loc_class both start with it.
    locality = models.ForeignKey(Locality, on_delete=models.PROTECT, related_name="households", db_index=False)
    # The commune's own household number when it has one (imports key households on it).
    # Byte order ("C"): the import sorts and joins households on it by bytes, and the unique
    # (locality, number) index then compares bytes too.
    external_ref = models.CharField(_("household number"), max_length=40, db_collation="C")
    address = models.CharField(_("address"), max_length=300, blank=True)
    phone = models.CharField(_("phone"), max_length=20, blank=True)
    poverty_class = models.CharField(
        _("poverty class"), max_length=16, choices=PovertyClass.choices, default=PovertyClass.NONE
    )
    certificate_number = models.CharField(_("certificate number"), max_length=40, blank=True)
    certificate_year = models.PositiveSmallIntegerField(_("certificate year"), null=True, blank=True)
    is_poor_commune = models.BooleanField(_("poor commune"), default=False)
    is_ethnic_minority = models.BooleanField(_("ethnic minority"), default=False)
    is_island_commune = models.BooleanField(_("island commune"), default=False)
    created_by = models.ForeignKey(
        "donors.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_index=False
    )
    import_job = models.ForeignKey(
        "beneficiaries.ImportJob", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("household")
        verbose_name_plural = _("households")
        constraints = [
            models.UniqueConstraint(fields=["locality", "external_ref"], name="household_locality_ref"),
            models.CheckConstraint(
                condition=models.Q(poverty_class__in=PovertyClass.values), name="household_poverty_class_valid"
            ),
        ]
        indexes = [models.Index(fields=["locality", "poverty_class"], name="household_loc_class")]

    def __str__(self) -> str:
        return f"{self.external_ref} · {self.locality}"


class Sex(models.TextChoices):
    MALE = "male", _("Male")
    FEMALE = "female", _("Female")


class Relation(models.TextChoices):
    HEAD = "head", _("Head of household")
    SPOUSE = "spouse", _("Spouse")
    CHILD = "child", _("Child")
    PARENT = "parent", _("Parent")
    GRANDCHILD = "grandchild", _("Grandchild")
    OTHER = "other", _("Other")


class MemberStatus(models.TextChoices):
    DRAFT = "draft", _("Draft")
    SUBMITTED = "submitted", _("Submitted")
    RESUBMITTED = "resubmitted", _("Resubmitted")
    APPROVED = "approved", _("Approved")
    REJECTED = "rejected", _("Rejected")
    RETURNED = "returned", _("Returned for information")
    SUSPENDED = "suspended", _("Suspended")


class Member(models.Model):
    household = models.ForeignKey(Household, on_delete=models.PROTECT, related_name="members")
    # Denormalised from the household: scoping and duplicate detection are one indexed filter.
    # No index of its own: member_near_dup (locality first) serves every locality filter.
    locality = models.ForeignKey(Locality, on_delete=models.PROTECT, related_name="+", db_index=False)
    full_name = models.CharField(_("full name"), max_length=200)
    # Byte order ("C"): it is ASCII, compared for equality (near-duplicates) and searched with
    # LIKE; the database's default collation made every comparison a strcoll() call.
    name_ascii = models.CharField(max_length=200, editable=False, db_collation="C")
    date_of_birth = models.DateField(_("date of birth"))
    sex = models.CharField(_("sex"), max_length=8, choices=Sex.choices)
    # Twelve digits: byte order is their order, and the unique index compares bytes instead of
    # calling strcoll() (an import's million random-order inserts: 2.4 → 2.0 s).
    personal_id = models.CharField(_("personal ID"), max_length=12, unique=True, db_collation="C")
    si_code = models.CharField(_("social insurance code"), max_length=10, blank=True)
    ethnicity = models.CharField(_("ethnicity"), max_length=60, blank=True)
    relation = models.CharField(_("relation to head"), max_length=16, choices=Relation.choices)
    is_student = models.BooleanField(_("pupil or student"), default=False)
    card_group = models.CharField(_("current card group"), max_length=4, blank=True)
    card_valid_until = models.DateField(_("current card valid until"), null=True, blank=True)
    status = models.CharField(_("status"), max_length=16, choices=MemberStatus.choices, default=MemberStatus.DRAFT)
    submitted_by = models.ForeignKey(
        "donors.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_index=False
    )
    is_possible_duplicate = models.BooleanField(_("possible duplicate"), default=False)
    # The import that created the member, if any: its first history entry ("imported from
    # <file>, job N") is derived from this row instead of a history row per imported member
    # (a million more inserts, and an index, per province). No index: nothing filters on it
    # but the rare deletion of an import job.
    import_job = models.ForeignKey(
        "beneficiaries.ImportJob", null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_index=False
    )
    # Months of state support for voluntary SI this person has already had (FACTS §3: at most
    # 10 years); pricing stops the support once the cap is used up. db_default: set-based
    # INSERTs (the import) need not name it.
    vsi_support_months_used = models.PositiveSmallIntegerField(
        _("voluntary SI support months used"), default=0, db_default=0
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("member")
        verbose_name_plural = _("members")
        constraints = [
            models.CheckConstraint(condition=models.Q(status__in=MemberStatus.values), name="member_status_valid"),
            models.CheckConstraint(condition=models.Q(sex__in=Sex.values), name="member_sex_valid"),
            models.CheckConstraint(condition=models.Q(personal_id__regex=r"^[0-9]{12}$"), name="member_pid_12_digits"),
        ]
        indexes = [
            # Near-duplicate key, integers first: lookups are equalities on all three columns, and
            # an integer comparison decides most steps of each insert's descent (measured: the
            # index costs half as much to maintain as with the name first).
            models.Index(fields=["locality", "date_of_birth", "name_ascii"], name="member_near_dup"),
        ]

    def __str__(self) -> str:
        return self.full_name

    def has_current_card(self, on_date) -> bool:
        return bool(self.card_valid_until and self.card_valid_until >= on_date)


class MemberTransition(models.Model):
    """Append-only history of a member's status."""

    member = models.ForeignKey(Member, on_delete=models.CASCADE, related_name="transitions", db_index=False)
    actor = models.ForeignKey(
        "donors.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_index=False
    )
    at = models.DateTimeField(default=timezone.now)
    from_status = models.CharField(max_length=16, blank=True)
    to_status = models.CharField(max_length=16)
    reason = models.TextField(blank=True)

    class Meta:
        ordering = ["at", "id"]
        indexes = [models.Index(fields=["member", "at"], name="transition_member_at")]

    def __str__(self) -> str:
        return f"{self.member_id}: {self.from_status or '∅'} → {self.to_status}"


class PersonalDataView(models.Model):
    """One unmasked view of a person's data by a staff member (who, what, when, where)."""

    viewer = models.ForeignKey("donors.User", on_delete=models.PROTECT, related_name="+")
    household = models.ForeignKey(Household, on_delete=models.CASCADE, related_name="+")
    member = models.ForeignKey(Member, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    at = models.DateTimeField(default=timezone.now)
    channel = models.CharField(max_length=16)  # "page" or "api"

    class Meta:
        indexes = [models.Index(fields=["household", "at"], name="pdview_household_at")]

    def __str__(self) -> str:
        return f"{self.viewer_id} viewed household {self.household_id} at {self.at:%Y-%m-%d %H:%M}"


class LocalityFreeze(models.Model):
    """A locality's list frozen after a campaign deadline; active while unfrozen_at is null."""

    locality = models.ForeignKey(Locality, on_delete=models.PROTECT, related_name="freezes")
    frozen_by = models.ForeignKey("donors.User", on_delete=models.PROTECT, related_name="+")
    frozen_at = models.DateTimeField(default=timezone.now)
    reason = models.TextField(blank=True)
    unfrozen_by = models.ForeignKey("donors.User", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    unfrozen_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["locality"], condition=models.Q(unfrozen_at__isnull=True), name="one_active_freeze"
            )
        ]

    def __str__(self) -> str:
        return f"{self.locality_id} frozen at {self.frozen_at:%Y-%m-%d}"


# --- Imports ---------------------------------------------------------------------------------


class ImportStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    RUNNING = "running", _("Running")
    DONE = "done", _("Done")
    FAILED = "failed", _("Failed")


class ImportJob(models.Model):
    created_by = models.ForeignKey("donors.User", on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    file = models.FileField(upload_to="imports/%Y/%m/")
    original_name = models.CharField(max_length=255)
    status = models.CharField(max_length=16, choices=ImportStatus.choices, default=ImportStatus.PENDING)
    rows_total = models.PositiveIntegerField(default=0)
    rows_done = models.PositiveIntegerField(default=0)
    rows_created = models.PositiveIntegerField(default=0)
    rows_unchanged = models.PositiveIntegerField(default=0)
    rows_failed = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(condition=models.Q(status__in=ImportStatus.values), name="importjob_status_valid")
        ]

    def __str__(self) -> str:
        return f"{self.original_name} ({self.status})"


class ImportRowError(models.Model):
    job = models.ForeignKey(ImportJob, on_delete=models.CASCADE, related_name="row_errors")
    row_number = models.PositiveIntegerField()
    field = models.CharField(max_length=60)
    reason = models.CharField(max_length=300)

    class Meta:
        ordering = ["row_number", "id"]

    def __str__(self) -> str:
        return f"row {self.row_number} {self.field}: {self.reason}"


# --- Pricing data (versioned, editable in the admin) -------------------------------------------


class PremiumSchedule(models.Model):
    """Household HI premium from `valid_from`: rate × base salary, times the household ladder."""

    valid_from = models.DateField(_("valid from"), unique=True)
    base_salary_vnd = models.BigIntegerField(_("base salary (VND/month)"))
    hi_rate = models.DecimalField(_("HI rate"), max_digits=6, decimal_places=4)
    ladder_1 = models.DecimalField(_("1st member"), max_digits=5, decimal_places=4, default=1)
    ladder_2 = models.DecimalField(_("2nd member"), max_digits=5, decimal_places=4)
    ladder_3 = models.DecimalField(_("3rd member"), max_digits=5, decimal_places=4)
    ladder_4 = models.DecimalField(_("4th member"), max_digits=5, decimal_places=4)
    ladder_5 = models.DecimalField(_("5th and later"), max_digits=5, decimal_places=4)
    source = models.CharField(_("source document"), max_length=300)

    class Meta:
        ordering = ["valid_from"]
        verbose_name = _("premium schedule")
        verbose_name_plural = _("premium schedules")

    def __str__(self) -> str:
        return f"{self.valid_from} · {self.base_salary_vnd:,}"

    def ladder(self, position: int):
        return [self.ladder_1, self.ladder_2, self.ladder_3, self.ladder_4, self.ladder_5][min(position, 5) - 1]


class Product(models.TextChoices):
    HI_HOUSEHOLD = "hi", _("Household health-insurance card")
    VOLUNTARY_SI = "vsi", _("Voluntary social insurance")


class SupportGroup(models.TextChoices):
    POOR = "poor", _("Poor")
    NEAR_POOR = "near_poor", _("Near-poor")
    NEAR_POOR_POOR_COMMUNE = "near_poor_poor_commune", _("Near-poor in a poor commune")
    STUDENT = "student", _("Pupil or student")
    AVERAGE_FARMING = "average_farming", _("Average-living farming household")


class Jurisdiction(models.TextChoices):
    NATIONAL = "national", _("National")
    PROVINCE = "province", _("Province")
    COMMUNE = "commune", _("Commune")


class SupportRule(models.Model):
    """A state share of the HI premium for one group (national, or a local top-up)."""

    group = models.CharField(_("group"), max_length=32, choices=SupportGroup.choices)
    jurisdiction = models.CharField(_("jurisdiction"), max_length=16, choices=Jurisdiction.choices)
    locality = models.ForeignKey(
        Locality,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text=_("The province or commune of a local top-up; empty for national rules."),
    )
    share = models.DecimalField(_("share of the premium"), max_digits=5, decimal_places=4)
    valid_from = models.DateField(_("valid from"))
    valid_to = models.DateField(_("valid to (inclusive)"), null=True, blank=True)
    source = models.CharField(_("source document"), max_length=300)

    class Meta:
        ordering = ["group", "jurisdiction", "valid_from"]
        verbose_name = _("support rule")
        verbose_name_plural = _("support rules")
        constraints = [
            models.CheckConstraint(condition=models.Q(share__gte=0, share__lte=1), name="supportrule_share_0_1"),
            models.CheckConstraint(
                condition=models.Q(jurisdiction="national", locality__isnull=True)
                | (~models.Q(jurisdiction="national") & models.Q(locality__isnull=False)),
                name="supportrule_locality_iff_local",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_group_display()} {self.share:.0%} ({self.jurisdiction}, {self.valid_from})"


class VoluntarySIParameters(models.Model):
    """Voluntary social insurance from `valid_from` (Law on SI 2024, Decree 159/2025)."""

    valid_from = models.DateField(_("valid from"), unique=True)
    contribution_rate = models.DecimalField(_("contribution rate"), max_digits=5, decimal_places=4)
    min_income_vnd = models.BigIntegerField(_("minimum income (VND/month)"))
    max_income_base_multiple = models.PositiveSmallIntegerField(_("maximum income (× base salary)"), default=20)
    share_poor = models.DecimalField(max_digits=5, decimal_places=4)
    share_near_poor = models.DecimalField(max_digits=5, decimal_places=4)
    share_ethnic_minority = models.DecimalField(max_digits=5, decimal_places=4)
    share_other = models.DecimalField(max_digits=5, decimal_places=4)
    support_years_cap = models.PositiveSmallIntegerField(default=10)
    source = models.CharField(_("source document"), max_length=300)

    class Meta:
        ordering = ["valid_from"]
        verbose_name = _("voluntary SI parameters")
        verbose_name_plural = _("voluntary SI parameters")

    def __str__(self) -> str:
        return f"{self.valid_from} · {self.contribution_rate:.0%} × ≥{self.min_income_vnd:,}"
