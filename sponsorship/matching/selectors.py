"""Read side of matching: runs, a card's gifts, and what a donor's money funded."""

from django.db.models import Sum

from .models import Allocation, MatchingRun


def runs_list(*, province_id: int | None = None, limit: int = 200):
    qs = MatchingRun.objects.select_related("province")
    if province_id:
        qs = qs.filter(province_id=province_id)
    return qs[:limit]


def card_allocations(*, card_id: int):
    """Which gifts funded a card, with the score, rule version and components of each."""
    return Allocation.objects.filter(card_id=card_id).select_related("donation").order_by("id")


def donor_cards(*, donor):
    """Cards the donor's money funded: commune, group, months, status and the donor's part.
    Never personal data (no name, birth date or identifiers)."""
    return (
        Allocation.objects.filter(donation__donor=donor)
        .values(
            "card_id",
            "card__locality__name",
            "card__group",
            "card__months",
            "card__period_start",
            "card__status",
        )
        .annotate(amount_vnd=Sum("amount_vnd"))
        .order_by("-card_id")[:500]
    )
