"""Concurrency at scale: four Celery workers matching, a webhook storm through gunicorn and a
statement import at once, compared with a serial run of the same work
(tests/reliability/test_concurrency.py with its world `--scale` times bigger)."""

from .chaos import rows, run_suite  # noqa: F401 - rows is this benchmark's table too

SUITE = "tests/reliability/test_concurrency.py"


def add_arguments(parser):
    parser.add_argument("--scale", type=int, default=10)


def run(options, out) -> dict:
    return run_suite(SUITE, options["scale"], out)
