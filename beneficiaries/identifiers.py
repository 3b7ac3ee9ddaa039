"""Personal ID (CCCD / số định danh cá nhân) checks, FACTS §5.

12 digits, no check digit: 3-digit birth-registration province (the old 63-province code),
1 digit century+sex (0/1 = 1900s male/female, 2/3 = 2000s, 4/5 = 2100s), 2 digits of the
birth year, 6 random digits. Validation = structure plus a cross-check against the date of
birth and the sex.
"""

from __future__ import annotations

from datetime import date

from django.utils.translation import gettext as _

# The old (pre-2025) province codes are 001..096 with gaps; anything else is not a province.
LEGACY_PROVINCE_CODES = frozenset(
    {1, 2, 4, 6, 8, 10, 11, 12, 14, 15, 17, 19, 20, 22, 24, 25, 26, 27, 30, 31, 33, 34, 35, 36, 37, 38, 40, 42, 44}
    | {45, 46, 48, 49, 51, 52, 54, 56, 58, 60, 62, 64, 66, 67, 68, 70, 72, 74, 75, 77, 79, 80, 82, 83, 84, 86, 87}
    | {89, 91, 92, 93, 94, 95, 96}
)
CENTURIES = {0: 1900, 1: 1900, 2: 2000, 3: 2000, 4: 2100, 5: 2100}


def personal_id_errors(personal_id: str, *, date_of_birth: date | None, sex: str | None) -> dict[str, str]:
    """Field → message for everything wrong with this ID; empty when it is valid.

    Messages are per field so a form or an import error file can point at the right column.
    """
    # isascii: "０４２…" (full-width) passes isdigit() but not the database's [0-9]{12} check.
    if not personal_id or len(personal_id) != 12 or not personal_id.isascii() or not personal_id.isdigit():
        return {"personal_id": _("The personal ID must be exactly 12 digits.")}
    if int(personal_id[:3]) not in LEGACY_PROVINCE_CODES:
        return {"personal_id": _("The first three digits of the personal ID are not a province code.")}
    digit = int(personal_id[3])
    if digit not in CENTURIES:
        return {"personal_id": _("The fourth digit of the personal ID must be 0 to 5 (century and sex).")}
    errors: dict[str, str] = {}
    if date_of_birth is not None:
        year = CENTURIES[digit] + int(personal_id[4:6])
        if year != date_of_birth.year:
            errors["date_of_birth"] = _(
                "The date of birth (year %(dob)s) does not match the personal ID (year %(id)s)."
            ) % {
                "dob": date_of_birth.year,
                "id": year,
            }
    if sex:
        id_sex = "female" if digit % 2 else "male"
        if id_sex != sex:
            errors["sex"] = _("The sex does not match the personal ID's fourth digit.")
    return errors


def make_personal_id(*, province_code: int, date_of_birth: date, sex: str, serial: int) -> str:
    """A structurally valid ID (demo data, tests, benchmark)."""
    digit = (date_of_birth.year // 100 - 19) * 2 + (1 if sex == "female" else 0)
    return f"{province_code:03d}{digit}{date_of_birth.year % 100:02d}{serial % 1_000_000:06d}"
