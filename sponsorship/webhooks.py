"""POST /stripe/webhook/: verify, store raw, answer 200, process later in Celery."""

import logging

from django.http import HttpResponse, HttpResponseBadRequest
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from config.ratelimit import ratelimit

from .services import stripe_events

logger = logging.getLogger("sponsorship.webhooks")


@csrf_exempt
@ratelimit("webhook")  # per sender IP, before any signature work (issue 8)
@require_POST
def stripe_webhook(request):
    sig = request.headers.get("Stripe-Signature")
    if not sig:
        # Before touching the database: unsigned requests cost us nothing.
        return HttpResponseBadRequest("missing Stripe-Signature")
    try:
        event = stripe_events.verify(request.body, sig)
    except Exception as exc:  # noqa: BLE001 — bad JSON or bad signature: the sender's problem
        logger.warning("rejected stripe webhook: %s", exc)
        return HttpResponseBadRequest("invalid signature or payload")
    _row_id, created = stripe_events.store_event(event, raw=request.body)
    if created:
        # One drain in flight, not one task per event: the worker applies events in bulk.
        stripe_events.request_drain()
    return HttpResponse("ok")
