"""Accounts. Every person who logs in (donors and Front, agency and finance staff) is a
User with one role; staff roles are scoped to localities through StaffScope."""

from django.contrib.auth.models import AbstractBaseUser, BaseUserManager, PermissionsMixin
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class Role(models.TextChoices):
    DONOR = "donor", _("Donor")
    COMMUNE_OFFICER = "commune_officer", _("Commune officer")
    FRONT_REVIEWER = "front_reviewer", _("Front reviewer")
    AGENCY_VIEWER = "agency_viewer", _("Agency viewer")
    FINANCE = "finance", _("Finance")
    ADMIN = "admin", _("Administrator")


# Roles that act on people's records and so must be scoped to localities.
SCOPED_ROLES = {Role.COMMUNE_OFFICER, Role.FRONT_REVIEWER, Role.AGENCY_VIEWER}


class UserManager(BaseUserManager):
    use_in_migrations = True

    def _create(self, email, password, **extra):
        if not email:
            raise ValueError("An email address is required.")
        user = self.model(email=self.normalize_email(email).lower(), **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_user(self, email, password=None, **extra):
        extra.setdefault("is_staff", False)
        extra.setdefault("is_superuser", False)
        return self._create(email, password, **extra)

    def create_superuser(self, email, password=None, **extra):
        extra.update(is_staff=True, is_superuser=True, role=Role.ADMIN)
        return self._create(email, password, **extra)


class User(AbstractBaseUser, PermissionsMixin):
    email = models.EmailField(_("email"), unique=True)
    full_name = models.CharField(_("full name"), max_length=200, blank=True)
    role = models.CharField(_("role"), max_length=32, choices=Role.choices, default=Role.DONOR)
    is_staff = models.BooleanField(_("staff status"), default=False)
    is_active = models.BooleanField(_("active"), default=True)
    date_joined = models.DateTimeField(_("date joined"), default=timezone.now)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []

    class Meta:
        verbose_name = _("user")
        verbose_name_plural = _("users")
        constraints = [
            models.CheckConstraint(condition=models.Q(role__in=Role.values), name="user_role_valid"),
        ]

    def __str__(self) -> str:
        return self.full_name or self.email

    @property
    def is_scoped_staff(self) -> bool:
        return self.role in SCOPED_ROLES


class StaffScope(models.Model):
    """One locality a staff member may act on: a whole province, or one commune."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="scopes")
    locality = models.ForeignKey("beneficiaries.Locality", on_delete=models.PROTECT, related_name="+")

    class Meta:
        verbose_name = _("staff scope")
        verbose_name_plural = _("staff scopes")
        constraints = [models.UniqueConstraint(fields=["user", "locality"], name="staffscope_unique")]

    def __str__(self) -> str:
        return f"{self.user} → {self.locality}"


class DonorKind(models.TextChoices):
    PERSON = "person", _("Individual")
    BUSINESS = "business", _("Business")


class DonorProfile(models.Model):
    """What a donor's receipts say. Businesses carry a 10- or 13-digit tax code (MST,
    checked with python-stdnum); an individual's tax code is the 12-digit personal ID."""

    user = models.OneToOneField(User, on_delete=models.CASCADE, related_name="donor_profile")
    kind = models.CharField(_("donor type"), max_length=10, choices=DonorKind.choices, default=DonorKind.PERSON)
    company_name = models.CharField(_("company name"), max_length=200, blank=True)
    tax_code = models.CharField(_("tax code"), max_length=14, blank=True)
    phone = models.CharField(_("phone"), max_length=20, blank=True)
    address = models.CharField(_("address"), max_length=300, blank=True)
    email_verified_at = models.DateTimeField(_("email verified at"), null=True, blank=True)

    class Meta:
        verbose_name = _("donor profile")
        verbose_name_plural = _("donor profiles")
        constraints = [
            models.CheckConstraint(condition=models.Q(kind__in=DonorKind.values), name="donorprofile_kind_valid"),
            models.CheckConstraint(
                condition=~models.Q(kind="business") | ~models.Q(company_name=""),
                name="donorprofile_business_has_name",
            ),
        ]

    def __str__(self) -> str:
        return self.company_name or str(self.user)
