import io
import json

from django.core.management import call_command


def test_benchmark_limits_prints_a_table_then_one_json_line(db):
    out = io.StringIO()
    call_command("benchmark", "limits", "--rows", "2000", "--ops", "200", "--repeat", "1", stdout=out)
    lines = out.getvalue().strip().splitlines()
    figures = json.loads(lines[-1])
    assert figures["benchmark"] == "limits"
    assert figures["copy_rows_per_s"] > 0
    assert figures["redis_pipelined_ops_per_s"] > 0
    assert any("COPY" in line for line in lines[:-1])
