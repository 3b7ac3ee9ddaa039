"""schemathesis over /api/schema/ as each of the ten personas of the access matrix: operations,
examples and server errors (goal: 0). Runs inside a transaction that is rolled back; uploads go
to a temporary folder. Run from a checkout (the personas and world are the test suite's)."""

import tempfile
import time


def add_arguments(parser):
    parser.add_argument("--examples", type=int, default=40, help="examples per operation and persona")
    parser.add_argument("--seed", type=int, default=8)
    parser.add_argument("--only", default="", help="only operations whose label contains this")


def run(options, out) -> dict:
    import logging

    from django.db import transaction
    from django.test import override_settings
    from django.test.utils import setup_test_environment, teardown_test_environment

    from tests.hardening.fuzz import fuzz
    from tests.hardening.world import ROLES, build_world

    setup_test_environment()  # the test client needs it (and the locmem mail outbox)
    # 4xx answers are the expected ones: keep the log to server errors.
    logging.getLogger("django.request").setLevel(logging.ERROR)
    t0 = time.perf_counter()
    try:
        with (
            tempfile.TemporaryDirectory() as media,
            override_settings(CHUNGTAY_RATELIMIT_ENABLED=False, MEDIA_ROOT=media, ALLOWED_HOSTS=["*"]),
        ):
            with transaction.atomic():
                world = build_world()
                result = fuzz(
                    world, ROLES, max_examples=options["examples"], seed=options["seed"], only=options["only"]
                )
                transaction.set_rollback(True)
    finally:
        teardown_test_environment()
    for failure in result.failures:
        out.write(failure)
    figures = result.figures()
    figures.update(examples_per_operation_and_role=options["examples"], seconds=round(time.perf_counter() - t0, 1))
    return figures


def rows(figures: dict) -> list[tuple[str, str]]:
    return [
        ("API operations", str(figures["operations"])),
        ("personas", str(figures["roles"])),
        ("examples sent", f"{figures['examples']:,}"),
        ("server errors (5xx)", str(figures["server_errors"])),
        ("answers by status", ", ".join(f"{k}: {v}" for k, v in figures["statuses"].items())),
        ("seconds", str(figures["seconds"])),
    ]
