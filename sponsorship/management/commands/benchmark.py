import importlib

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from config.engines import redacted
from sponsorship.benchmarks import REGISTRY
from sponsorship.benchmarks.report import print_json, print_table


class Command(BaseCommand):
    help = "Run a benchmark: a readable table, then one JSON line with its figures. Names: " + ", ".join(REGISTRY)

    def add_arguments(self, parser):
        subparsers = parser.add_subparsers(dest="name", required=True)
        for name, module_path in REGISTRY.items():
            module = importlib.import_module(module_path)
            sub = subparsers.add_parser(name, help=(module.__doc__ or "").strip().splitlines()[0])
            module.add_arguments(sub)

    def handle(self, *args, name=None, **options):
        if name not in REGISTRY:
            raise CommandError(f"unknown benchmark {name!r}; known: {', '.join(REGISTRY)}")
        module = importlib.import_module(REGISTRY[name])
        figures = {"benchmark": name}
        figures.update(module.run(options, self.stdout))
        db = settings.DATABASES["default"]
        figures["engines"] = {"database_host": str(db.get("HOST") or "socket"), "redis": redacted(settings.REDIS_URL)}
        print_table(self.stdout, f"benchmark {name}", module.rows(figures))
        print_json(self.stdout, figures)
