from django.core.management.base import BaseCommand

from beneficiaries.demo import demo_households_seed
from sponsorship.demo import demo_seed


class Command(BaseCommand):
    help = "Create the demo data and logins (idempotent)."

    def handle(self, *args, **options):
        from donors.demo import demo_donors  # issue 4: demo donors, a business and their gifts

        for email, password, role in demo_seed() + demo_donors():
            self.stdout.write(f"  {role:28} {email:34} {password}")
        self.stdout.write(f"  registry demo: {demo_households_seed()}")
        from sponsorship.enrollment.demo import demo_enrollment_seed  # issue 6

        self.stdout.write(f"  enrollment demo: {demo_enrollment_seed()}")
