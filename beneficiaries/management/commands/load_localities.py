from django.core.management.base import BaseCommand

from beneficiaries.localities import EXPECTED_COUNTS, localities_are_loaded, localities_load, locality_counts


class Command(BaseCommand):
    help = "Load the 2025 and legacy localities and the old→new mapping from vietnam-provinces (idempotent)."

    def add_arguments(self, parser):
        parser.add_argument("--force", action="store_true", help="Reload even when the counts already match.")

    def handle(self, *args, force=False, **options):
        if not force and localities_are_loaded():
            self.stdout.write("localities already loaded")
            counts = locality_counts()
        else:
            counts = localities_load()
        for (scheme, level), expected in EXPECTED_COUNTS.items():
            got = counts.get((scheme, level), 0)
            flag = "" if got == expected else f"  (expected {expected})"
            self.stdout.write(f"  {scheme:7} {level:9} {got:6}{flag}")
