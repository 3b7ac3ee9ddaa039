"""Benchmarks: `python manage.py benchmark <name>`. Each module has `add_arguments(parser)`
and `run(options, out) -> dict`; the harness prints the table and the JSON line."""

REGISTRY = {
    "limits": "sponsorship.benchmarks.limits",
    "import": "sponsorship.benchmarks.imports",
    "statement": "sponsorship.benchmarks.statement",
    "reconcile": "sponsorship.benchmarks.reconcile",
    "webhooks": "sponsorship.benchmarks.webhooks",
    "dashboard": "sponsorship.benchmarks.dashboard",
    "matching": "sponsorship.benchmarks.matching",
    "ledger": "sponsorship.benchmarks.ledger",
    "chaos": "sponsorship.benchmarks.chaos",
    "concurrency": "sponsorship.benchmarks.concurrency",
    "load": "sponsorship.benchmarks.load",
}
REGISTRY["schemathesis"] = "sponsorship.benchmarks.schemathesis"  # issue 8: bad input
