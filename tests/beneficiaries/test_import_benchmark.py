"""The import benchmark at a tiny size: the real import path on a generated file, the COPY
rates, the write floor of the import's own output, and nothing left behind."""

import io
import json

from django.core.management import call_command

from beneficiaries.models import Household, Member


def test_import_benchmark_prints_its_figures_and_the_write_floor(transactional_db, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    out = io.StringIO()
    call_command("benchmark", "import", "--rows", "400", "--copy-rows", "2000", stdout=out)
    lines = out.getvalue().strip().splitlines()
    figures = json.loads(lines[-1])
    assert figures["benchmark"] == "import"
    assert figures["rows_created"] + figures["rows_failed"] == 400 and figures["rows_created"] > 300
    # The floor wrote the last import's members again, and its households.
    assert figures["write_floor_rows"]["beneficiaries_member"] == figures["rows_created"]
    assert 0 < figures["write_floor_rows"]["beneficiaries_household"] < figures["rows_created"]
    assert len(figures["write_floor_s_samples"]) == 3 and figures["seconds_at_goal"] > 0
    assert any("Writing the output alone" in line for line in lines[:-1])
    assert not Household.objects.filter(external_ref__startswith="BENCH-").exists()
    assert not Member.objects.filter(household__external_ref__startswith="BENCH-").exists()
