"""Staff pages: matching runs, and which gifts funded a card (with the explanation)."""

from django.contrib.auth.decorators import login_required
from django.http import HttpResponseForbidden
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

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
    """A business donor sees its match offers: cap, used, the gifts matched (amount, commune,
    date; never who gave them), what each offer owes and its settlements, with a form to pay."""
    import uuid

    from . import settlement

    offers = list(selectors.business_offers(user=request.user))
    owed = settlement.offers_owed([o.pk for o in offers])
    for o in offers:
        o.money = owed[o.pk]
        o.credit = max(-o.money["owed"], 0)
        o.settlement_rows = list(settlement.offer_settlements(offer=o))
        o.surplus = sum(max(s.received - s.donation.amount_vnd, 0) for s in o.settlement_rows)
    return render(request, "sponsorship/matching/offers.html", {"offers": offers, "idempotency_key": uuid.uuid4().hex})


@login_required
@require_POST
def offer_settle(request, offer_id):
    """POST: the business pays (part of) what an offer owes, by bank transfer or card; the
    payment page of that pledge follows. Another business's offer is a 404."""
    from django.contrib import messages

    from config.exceptions import ApplicationError

    from . import settlement
    from .feature_models import MatchOffer

    offer = get_object_or_404(MatchOffer, pk=offer_id, business=request.user)
    raw = request.POST.get("amount_vnd", "").strip()
    try:
        s = settlement.settlement_create(
            offer=offer,
            by=request.user,
            method=request.POST.get("method", ""),
            amount_vnd=int(raw) if raw else None,
            idempotency_key=request.POST.get("idempotency_key", "")[:100],
        )
    except (ApplicationError, ValueError) as exc:
        messages.error(request, getattr(exc, "message", str(exc)))
        return redirect("matching-my-offers")
    return redirect("donate-pay", public_id=s.donation.public_id)
