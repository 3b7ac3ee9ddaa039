"""The donor dashboard's fragments from matching: unmatched money (refund offers, money moved
where most needed) and the business's match offers. One tag in donors/dashboard.html."""

from django import template

register = template.Library()


@register.inclusion_tag("sponsorship/matching/_donor_fragment.html")
def matching_donor_fragment(user):
    from sponsorship.matching import selectors

    return {
        "unmatched": list(selectors.donor_unmatched(donor=user)[:50]),
        "has_offers": selectors.business_offers(user=user).exists(),
    }
