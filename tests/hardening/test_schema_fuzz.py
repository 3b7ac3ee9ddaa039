"""Bad input through the API: schemathesis cases for every operation of /api/schema/, as each
persona → no server error. The fuller run is `./chungtay manage benchmark schemathesis`."""

from __future__ import annotations

import pytest

from .fuzz import fuzz
from .world import ROLES, build_world

QUICK_EXAMPLES = 4


@pytest.mark.django_db
def test_no_server_errors_for_any_role(report, settings):
    settings.CHUNGTAY_RATELIMIT_ENABLED = False  # the fuzzer's bursts are not abuse
    world = build_world()
    result = fuzz(world, ROLES, max_examples=QUICK_EXAMPLES)
    report.add("schemathesis (quick)", **{k: v for k, v in result.figures().items() if k != "statuses"})
    report.line(f"schemathesis (quick) statuses: {result.figures()['statuses']}")
    assert result.operations >= 30 and result.examples >= result.operations * len(ROLES)
    assert not result.schema_errors, result.schema_errors
    assert result.server_errors == 0, "\n\n".join(result.failures)
