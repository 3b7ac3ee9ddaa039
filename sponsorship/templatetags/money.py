from django import template

from sponsorship.money import format_count, format_vnd

register = template.Library()


@register.filter
def vnd(amount):
    """{{ amount|vnd }} in the active language."""
    return format_vnd(amount)


@register.filter
def thousands(number):
    """{{ count|thousands }}: 1.234.567 in Vietnamese, 1,234,567 in English."""
    return format_count(number)
