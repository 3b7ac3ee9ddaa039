"""POST /stripe/webhook/: verify, store raw, answer 200, process later in Celery."""

import logging

from django.http import HttpResponse, HttpResponseBadRequest
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from .services import stripe_events

logger = logging.getLogger("sponsorship.webhooks")


@csrf_exempt
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
    row_id, created = stripe_events.store_event(event)
    if created:
        from . import tasks

        try:
            tasks.process_stripe_event.delay(row_id)
        except Exception:  # noqa: BLE001 — the event is stored; the beat drain applies it
            logger.exception("could not enqueue stripe event %s", row_id)
    return HttpResponse("ok")
