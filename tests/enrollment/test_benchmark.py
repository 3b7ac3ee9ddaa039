import io

import pytest

from sponsorship.benchmarks import dashboard
from sponsorship.enrollment.models import EnrollmentRollup


@pytest.mark.django_db
def test_dashboard_benchmark_runs_small_and_cleans_up():
    figures = dashboard.run({"enrollments": 200_000, "repeat": 3}, io.StringIO())
    assert figures["rollup_rows"] > 3321 * 24 and figures["api_all_p50_ms"] > 0
    assert not EnrollmentRollup.objects.filter(year=dashboard.BENCH_YEAR).exists()
