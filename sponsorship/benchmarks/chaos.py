"""Faults at scale: the fault suite (tests/reliability/test_faults.py) with its worlds made
`--scale` times bigger — a Celery worker SIGKILLed mid-matching and mid-reconciliation, Redis
restarted with tasks in flight, a PostgreSQL backend terminated mid-task, webhooks ×10
shuffled with a third dropped then reconciled. It runs pytest on its own test database and
prints each scenario's line."""

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SUITE = "tests/reliability/test_faults.py"


def add_arguments(parser):
    parser.add_argument("--scale", type=int, default=5)


def run_suite(suite: str, scale: int, out) -> dict:
    report = Path(tempfile.mkstemp(prefix="chungtay-reliability-", suffix=".jsonl")[1])
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "CHUNGTAY_RELIABILITY_SCALE": str(scale),
        "CHUNGTAY_RELIABILITY_REPORT": str(report),
        # Its own test database and Redis db: a test run of the same checkout may be going on.
        "CHUNGTAY_TEST_DATABASE": "test_chungtay_reliability_bench",
        "CHUNGTAY_TEST_REDIS_DB": "14",
    }
    out.write(f"running {suite} at scale {scale}…\n")
    t0 = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "pytest", suite, "-q", "-p", "no:cacheprovider", "--create-db"],
        cwd=ROOT, env=env, capture_output=True, text=True,
    )  # fmt: skip
    seconds = time.perf_counter() - t0
    scenarios = [json.loads(line) for line in report.read_text().splitlines() if line.strip()]
    report.unlink()
    summary = (result.stdout.strip().splitlines() or [""])[-1]
    if result.returncode:
        out.write(result.stdout[-6000:])
    return {
        "suite": suite,
        "scale": scale,
        "passed": result.returncode == 0,
        "pytest": summary,
        "seconds": round(seconds, 1),
        "scenarios": scenarios,
    }


def run(options, out) -> dict:
    return run_suite(SUITE, options["scale"], out)


def rows(figures: dict) -> list[tuple[str, str]]:
    out = [("suite / scale", f"{figures['suite']} × {figures['scale']}"), ("pytest", figures["pytest"])]
    for s in figures["scenarios"]:
        detail = ", ".join(f"{k}={v}" for k, v in s.items() if k != "scenario")
        out.append((s["scenario"], detail))
    out.append(("all passed", str(figures["passed"])))
    return out
