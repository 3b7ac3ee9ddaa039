from django import template

from beneficiaries.selectors import mask

register = template.Library()


@register.filter
def masked(value, unmasked):
    """{{ member.personal_id|masked:unmasked }}: the value, or all but its last 3 characters hidden."""
    if unmasked:
        return value if value not in (None, "") else "—"
    if hasattr(value, "year"):
        return "••/••/••••"
    return mask(value) or "—"
