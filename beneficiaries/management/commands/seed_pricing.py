from django.core.management.base import BaseCommand

from beneficiaries.pricing_seed import seed_pricing


class Command(BaseCommand):
    help = "Create the published premium schedules, support rules and voluntary SI parameters (idempotent)."

    def handle(self, *args, **options):
        seed_pricing()
        self.stdout.write("pricing data present")
