import pytest
from django.core.management import call_command

from donors.models import Role
from sponsorship.enrollment import cardlist, demo, selectors
from sponsorship.enrollment.models import EnrollmentRollup

pytestmark = pytest.mark.django_db


def test_demo_seed_then_importing_the_ha_noi_list_counts_against_ha_noi_target(settings, tmp_path, ha_noi, make_user):
    settings.MEDIA_ROOT = tmp_path
    call_command("seed_demo")
    path = demo.demo_cardlist_path()
    assert path.exists()
    rows = EnrollmentRollup.objects.filter(locality=ha_noi, year=2022, type="hi")
    before = sum(r.new_enrollments for r in rows)
    assert sum(r.pending_vnd for r in rows) > 0  # submitted, not yet on the agency's list
    job = cardlist.cardlist_import(content=path.read_bytes(), file_name=path.name)
    assert job.enrolled > 0 and job.unmatched == 0
    from sponsorship.enrollment.rollups import rollups_recompute

    rollups_recompute()
    row = next(
        r
        for r in selectors.dashboard_rows(make_user(Role.FINANCE), year=2022, type="hi")
        if r["locality_id"] == ha_noi.pk
    )
    assert before == 0 and row["new"] == job.enrolled and row["gap"] == 161_000 - job.enrolled
    call_command("seed_demo")  # idempotent
