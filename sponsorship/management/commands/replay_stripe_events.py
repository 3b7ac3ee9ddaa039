from django.core.management.base import BaseCommand

from sponsorship.models import StripeEvent
from sponsorship.services import stripe_events


class Command(BaseCommand):
    help = "Re-apply failed (and pending) Stripe events from the inbox; safe to run again."

    def add_arguments(self, parser):
        parser.add_argument("event_ids", nargs="*", help="Stripe event ids (default: every failed or pending one)")

    def handle(self, *args, **options):
        qs = StripeEvent.objects.filter(status__in=["failed", "pending"])
        if options["event_ids"]:
            qs = StripeEvent.objects.filter(stripe_event_id__in=options["event_ids"])
        results = {}
        for pk in qs.order_by("id").values_list("id", flat=True):
            status = stripe_events.process_event(pk)
            results[status] = results.get(status, 0) + 1
        self.stdout.write(", ".join(f"{k}: {v}" for k, v in sorted(results.items())) or "nothing to replay")
