"""The import's shortcuts keep the registry's guarantees: an imported member's history starts
with the import (derived from the member row) and goes on with real transitions, and every
foreign key of the rows the import writes is verified (set-based) before it commits."""

import pytest
from django.db import IntegrityError, connection, transaction
from django.urls import reverse
from rest_framework.test import APIClient

from beneficiaries.models import Household, ImportJob, ImportStatus, Member, MemberStatus, MemberTransition
from beneficiaries.selectors import member_history
from beneficiaries.services import imports
from beneficiaries.services.review import member_approve
from config.bulk_fk import constrained_foreign_keys, verify_references

from .test_imports import HEADER, good_rows, run


@pytest.fixture(autouse=True)
def media(tmp_path, settings):
    settings.MEDIA_ROOT = tmp_path


def test_the_import_declares_every_foreign_key_of_the_tables_it_writes(officer):
    job = ImportJob(pk=1, created_by=officer)
    declared = [r.column for r in imports._references(job)]
    assert len(declared) == len(set(declared))
    # A foreign key added to Household or Member later must be declared too: the per-row
    # triggers are skipped while the import writes.
    assert set(declared) == set(constrained_foreign_keys(Household, Member))
    assert {"beneficiaries_member.household_id", "beneficiaries_household.locality_id"} <= set(declared)


def test_an_import_whose_rows_reference_a_missing_commune_is_refused_whole(officer, thanh_sen, monkeypatch):
    # The commune list the rows are checked against names a locality id that does not exist
    # (as if the commune were deleted while the import ran): the rows pass validation, the
    # triggers are skipped, and only the set-based check can stop them.
    real = imports.Context.for_user

    def stale(user, today):
        ctx = real(user, today)
        ctx.communes = {code: (10**9, prov) for code, (_pk, prov) in ctx.communes.items()}
        ctx.scope_communes = frozenset({10**9})
        return ctx

    monkeypatch.setattr(imports.Context, "for_user", stale)
    with pytest.raises(IntegrityError, match="locality_id"):
        run(officer, "\n".join([HEADER, *good_rows()]) + "\n")
    job = ImportJob.objects.get()
    assert job.status == ImportStatus.FAILED
    assert not Member.objects.exists() and not Household.objects.exists()


def test_the_declared_references_find_an_orphan_member(officer, thanh_sen):
    job = run(officer, "\n".join([HEADER, *good_rows()]) + "\n")
    assert job.status == ImportStatus.DONE, job.error
    member = Member.objects.first()
    with transaction.atomic(), connection.cursor() as cur:
        # The member-side references read the import's working tables; rebuild them from the
        # committed rows with one household id that does not exist.
        cur.execute(
            "CREATE TEMP TABLE import_hh ON COMMIT DROP AS"
            " SELECT id, locality_id, false AS is_new FROM beneficiaries_household"
        )
        cur.execute("UPDATE import_hh SET id = -1 WHERE id = %s", [member.household_id])
        with pytest.raises(IntegrityError, match="beneficiaries_member.household_id"):
            verify_references(cur, imports._references(job))


def test_an_imported_member_shows_the_import_then_real_transitions(officer, reviewer_ha_tinh, thanh_sen):
    job = run(officer, "\n".join([HEADER, *good_rows()]) + "\n", name="xa-thanh-sen.csv")
    member = Member.objects.order_by("id").first()
    member_approve(user=reviewer_ha_tinh, member=member)
    member.refresh_from_db()
    history = [(t.from_status, t.to_status, t.actor, t.reason) for t in member_history(member=member)]
    assert history == [
        ("", MemberStatus.SUBMITTED, officer, f"Imported from xa-thanh-sen.csv, job {job.pk}"),
        (MemberStatus.SUBMITTED, MemberStatus.APPROVED, reviewer_ha_tinh, ""),
    ]
    assert MemberTransition.objects.filter(member=member).count() == 1

    client = APIClient()
    client.force_authenticate(reviewer_ha_tinh)
    body = client.get(reverse("api-registry-member", args=[member.pk]), HTTP_ACCEPT_LANGUAGE="en").json()
    assert [(h["from_status"], h["to_status"], h["reason"]) for h in body["history"]] == [
        ("", "submitted", f"Imported from xa-thanh-sen.csv, job {job.pk}"),
        ("submitted", "approved", ""),
    ]
    client.force_login(reviewer_ha_tinh)
    page = client.get(reverse("registry-member", args=[member.pk]), HTTP_ACCEPT_LANGUAGE="vi").content.decode()
    # The page in Vietnamese: the import's entry first, then the approval.
    assert f"Nhập từ tệp xa-thanh-sen.csv, lượt nhập số {job.pk}" in page
    assert page.index("Nhập từ tệp") < page.index(">approved<")


def test_a_member_registered_by_form_keeps_its_stored_first_transition(officer, thanh_sen):
    from beneficiaries.services.registry import household_create

    from .conftest import member_input

    hh = household_create(user=officer, locality=thanh_sen, external_ref="HT-9", members=[member_input()])
    member = hh.members.get()
    assert member.import_job_id is None
    history = member_history(member=member)
    assert [(t.pk is not None, t.from_status, t.to_status) for t in history] == [(True, "", MemberStatus.DRAFT)]


def test_progress_advances_while_the_file_is_validated(officer, thanh_sen, monkeypatch):
    published = []
    # A few hundred rows span several blocks of the staging table: validated 100 at a time.
    monkeypatch.setattr(imports, "VALIDATE_ROWS", 100)
    monkeypatch.setattr(imports._Progress, "done", lambda self, rows, total: published.append((rows, total)))
    bad = [f"HT{n},,01/01/1990,Nam,,,Kinh,Chủ hộ,Tổ {n} có một địa chỉ khá dài,18073,," for n in range(400)]
    job = run(officer, "\n".join([HEADER, *good_rows(), *bad]) + "\n")
    assert job.status == ImportStatus.DONE, job.error
    assert (job.rows_total, job.rows_created, job.rows_failed) == (403, 3, 400)
    assert {total for _rows, total in published} == {403}
    done = [rows for rows, _total in published]
    # Validation alone moves it (2/5 of each row's work), chunk by chunk, then the writes
    # take it to the end.
    validating = [rows for rows in done if rows <= round(0.4 * 403)]
    assert len(validating) >= 3 and validating[-1] == round(0.4 * 403)
    assert done == sorted(done) and done[-1] == 403
