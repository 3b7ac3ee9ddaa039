"""Staff pages: matching runs, and which gifts funded a card (with the explanation)."""

from django.contrib.auth.decorators import login_required
from django.http import HttpResponseForbidden
from django.shortcuts import get_object_or_404, redirect, render

from donors.scopes import is_nationwide

from ..card_models import Card
from . import selectors


@login_required
def runs_page(request):
    if not is_nationwide(request.user):
        return HttpResponseForbidden()
    return render(request, "sponsorship/matching/runs.html", {"runs": selectors.runs_list(limit=100)})


@login_required
def card_gifts_page(request, card_id):
    if not is_nationwide(request.user):
        return HttpResponseForbidden()
    card = get_object_or_404(Card.objects.select_related("locality"), pk=card_id)
    return render(
        request,
        "sponsorship/matching/card_gifts.html",
        {"card": card, "allocations": selectors.card_allocations(card_id=card_id)},
    )


# --- Matching features: money refunded after sending, unmatched money, match offers ---------------


@login_required
def flagged_page(request):
    """Finance and nationwide staff: cards whose money was refunded or disputed after they were
    sent to the agency, and donors' answers to refund offers for unmatched money."""
    if not is_nationwide(request.user):
        return HttpResponseForbidden()
    return render(
        request,
        "sponsorship/matching/flagged.html",
        {"cards": selectors.flagged_cards(), "refunds": selectors.refund_requests()},
    )


@login_required
def unmatched_money_page(request, token):
    """The donor's page for a refund offer on money left unmatched (linked from the email and
    the dashboard). Another donor's offer is a 404."""
    from . import expiry
    from .feature_models import GiftExpiry

    x = get_object_or_404(GiftExpiry.objects.select_related("donation"), token=token, donation__donor=request.user)
    if request.method == "POST":
        expiry.donor_choose(expiry=x, choice=request.POST.get("choice", ""), by=request.user)
        return redirect("matching-unmatched", token=token)
    return render(request, "sponsorship/matching/unmatched.html", {"x": x})


@login_required
def my_offers_page(request):
    """A business donor sees its match offers: cap, used, and the gifts matched (amount,
    commune, date; never who gave them)."""
    return render(request, "sponsorship/matching/offers.html", {"offers": selectors.business_offers(user=request.user)})
