"""Tax codes (FACTS §5): a business MST is 10 digits with a check digit or 13 with a branch
suffix (python-stdnum `stdnum.vn.mst`); an individual's tax code is the 12-digit personal ID
(no check digit: digit 4 encodes century and sex)."""

import re

from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _
from stdnum.exceptions import ValidationError as StdnumError
from stdnum.vn import mst


def normalize_tax_code(value: str, *, kind: str) -> str:
    """Return the compact tax code or raise ValidationError with a clear message."""
    value = (value or "").strip()
    if not value:
        return ""
    compact = re.sub(r"[\s.\-]", "", value)
    if kind == "person" and re.fullmatch(r"\d{12}", compact):
        if compact[3] not in "012345":
            raise ValidationError(_("The personal ID's fourth digit must be 0 to 5."), code="tax_code")
        return compact
    try:
        return mst.validate(value)
    except StdnumError as exc:
        if kind == "person":
            raise ValidationError(
                _("Enter a valid tax code: a 12-digit personal ID or a 10- or 13-digit tax code."), code="tax_code"
            ) from exc
        raise ValidationError(_("Enter a valid business tax code (10 or 13 digits)."), code="tax_code") from exc
