from django.core.management import call_command
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Everything a fresh database needs before the platform runs (idempotent)."

    def add_arguments(self, parser):
        parser.add_argument("--no-demo", action="store_true", help="Reference data only, no demo data.")

    def handle(self, *args, no_demo=False, **options):
        call_command("migrate", interactive=False, verbosity=0)
        self.stdout.write("migrations applied")
        call_command("compile_translations")
        call_command("load_localities")
        if not no_demo:
            call_command("seed_demo")
