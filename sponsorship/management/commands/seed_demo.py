from django.core.management.base import BaseCommand

from beneficiaries.demo import demo_households_seed
from sponsorship.demo import demo_seed


class Command(BaseCommand):
    help = "Create the demo data and logins (idempotent)."

    def handle(self, *args, **options):
        for email, password, role in demo_seed():
            self.stdout.write(f"  {role:28} {email:34} {password}")
        self.stdout.write(f"  registry demo: {demo_households_seed()}")
