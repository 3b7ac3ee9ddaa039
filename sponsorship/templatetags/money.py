from django import template

from sponsorship.money import format_vnd

register = template.Library()


@register.filter
def vnd(amount):
    """{{ amount|vnd }} in the active language."""
    return format_vnd(amount)


@register.filter
def thousands(number):
    """A count grouped for the active language: 1.234.567 in Vietnamese, 1,234,567 in English."""
    from django.utils import translation

    if number is None:
        return ""
    grouped = f"{int(number):,}"
    return grouped.replace(",", ".") if (translation.get_language() or "vi")[:2] == "vi" else grouped
