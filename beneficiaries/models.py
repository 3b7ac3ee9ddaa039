"""Localities of both schemes. Codes collide across schemes (ward 4 is Trúc Bạch in the
legacy list and Ba Đình in 2025), so every reference is to a row keyed by (scheme, level,
code), never to a bare code."""

from django.db import models
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
