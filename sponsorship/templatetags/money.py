from django import template

from sponsorship.money import format_vnd

register = template.Library()


@register.filter
def vnd(amount):
    """{{ amount|vnd }} in the active language."""
    return format_vnd(amount)
