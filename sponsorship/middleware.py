"""A lean lane for Stripe's webhook.

Stripe posts machine-to-machine: no cookie, session, user, language, messages or CSRF
token means anything there, yet each of those middlewares costs time on every delivery,
and bursts of deliveries are what the endpoint must absorb. Placed first in MIDDLEWARE,
this hands POST /stripe/webhook/ straight to its view (which verifies the signature
itself); every other request goes through the full stack unchanged."""

from django.urls import reverse


class StripeWebhookShortcutMiddleware:
    def __init__(self, get_response):
        from .webhooks import stripe_webhook

        self.get_response = get_response
        self.view = stripe_webhook
        self.path = None

    def __call__(self, request):
        if self.path is None:
            self.path = reverse("stripe-webhook")
        if request.path_info == self.path and request.method == "POST":
            return self.view(request)
        return self.get_response(request)
