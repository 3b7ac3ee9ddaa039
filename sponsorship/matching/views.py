"""Staff pages: matching runs, and which gifts funded a card (with the explanation)."""

from django.contrib.auth.decorators import login_required
from django.http import HttpResponseForbidden
from django.shortcuts import get_object_or_404, render

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
