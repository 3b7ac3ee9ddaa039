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


def flagged_cards(*, limit: int = 500):
    """Cards sent to the agency whose money was refunded or disputed afterwards."""
    from ..card_models import Card

    return Card.objects.filter(is_flagged=True).select_related("locality").order_by("-updated_at")[:limit]


def refund_requests(*, limit: int = 500):
    """Decisions on unmatched money: refunds offered, with the donor's answer."""
    from .feature_models import ExpiryOutcome, GiftExpiry

    return (
        GiftExpiry.objects.filter(outcome=ExpiryOutcome.REFUND_OFFERED)
        .select_related("donation")
        .order_by("-created_at")[:limit]
    )


def donor_unmatched(*, donor):
    """The donor's own decisions on unmatched money (their dashboard)."""
    from .feature_models import GiftExpiry

    return GiftExpiry.objects.filter(donation__donor=donor).select_related("donation").order_by("-created_at")


def business_offers(*, user):
    """The business's own match offers with what each matched (no individual donor data)."""
    from .feature_models import MatchOffer

    return (
        MatchOffer.objects.filter(business=user)
        .prefetch_related("localities", "matches__source__locality")
        .order_by("-created_at")
    )
