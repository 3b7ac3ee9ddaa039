import csv
import io
from datetime import date

import pytest
from openpyxl import load_workbook

from beneficiaries.models import Level, Locality, Scheme
from config.exceptions import ConflictError
from donors.models import Role
from sponsorship.card_models import Card
from sponsorship.enrollment import batches, cardlist, exports, rollups, selectors, targets
from sponsorship.enrollment.models import AgencyBatch, BatchStatus, EnrollmentRollup, ReminderSent
from sponsorship.services.ledger import balance

from .conftest import FUND

pytestmark = pytest.mark.django_db


def _csv(rows) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(cardlist.D10A_HEADERS)
    w.writerows(rows)
    return buf.getvalue().encode()


def _batch(commune, make_card, n=2):
    cards = [make_card(commune) for _ in range(n)]
    batch = batches.batch_create(locality=commune, product="hi_household", period=date(2022, 11, 1))
    return batch, cards


# --- Targets -------------------------------------------------------------------------------------


def test_ha_noi_2022_targets_leave_the_article_gaps_and_map_to_2025(ha_noi, ha_tinh):
    targets.seed_targets(2022)
    hi = targets.targets_in_current_scheme(year=2022, type="hi")
    si = targets.targets_in_current_scheme(year=2022, type="si_voluntary")
    assert hi[ha_noi.pk]["number"] - hi[ha_noi.pk]["baseline"] == 161_000
    assert si[ha_noi.pk]["number"] - si[ha_noi.pk]["baseline"] == 41_000
    assert round(100 * hi[ha_noi.pk]["baseline"] / hi[ha_noi.pk]["number"]) == 98
    assert round(100 * si[ha_noi.pk]["baseline"] / si[ha_noi.pk]["number"]) == 62
    assert ha_tinh.pk in hi
    # Recorded on the legacy province, read on the 2025 one.
    legacy = Locality.objects.get(scheme=Scheme.LEGACY, level=Level.PROVINCE, code=1)
    assert targets.current_units(legacy) == [ha_noi]


# --- Batches -------------------------------------------------------------------------------------


def test_batch_lists_cards_cancel_returns_them_and_submitted_cannot_be_cancelled(hn_commune, make_card):
    batch, cards = _batch(hn_commune, make_card)
    assert {c.status for c in Card.objects.filter(pk__in=[c.pk for c in cards])} == {"listed"}
    batches.batch_cancel(batch_id=batch.pk)
    assert {c.status for c in Card.objects.filter(pk__in=[c.pk for c in cards])} == {"funded"}
    batch2 = batches.batch_create(locality=hn_commune, product="hi_household", period=date(2022, 11, 1))
    batches.batch_submit(batch_id=batch2.pk)
    assert Card.objects.get(pk=cards[0].pk).status == "submitted"
    with pytest.raises(ConflictError):
        batches.batch_cancel(batch_id=batch2.pk)


def test_mark_paid_moves_allocated_to_remitted_once(hn_commune, make_card):
    batch, _ = _batch(hn_commune, make_card)
    batches.batch_submit(batch_id=batch.pk)
    before = balance("allocated_to_cards", FUND)
    batches.batch_mark_paid(batch_id=batch.pk)
    batches.batch_mark_paid(batch_id=batch.pk)
    assert balance("allocated_to_cards", FUND) - before == 2 * 379_080
    assert balance("remitted_to_agency") == -2 * 379_080
    assert AgencyBatch.objects.get(pk=batch.pk).status == BatchStatus.PAID


def test_a_listed_batch_cannot_be_paid(hn_commune, make_card):
    batch, _ = _batch(hn_commune, make_card)
    with pytest.raises(ConflictError):
        batches.batch_mark_paid(batch_id=batch.pk)


def test_d03_exports_have_vietnamese_headers_and_neutralise_formulas(hn_commune, make_card):
    card = make_card(hn_commune)
    card.member.full_name = '=HYPERLINK("http://evil")'
    card.member.save()
    batch = batches.batch_create(locality=hn_commune, product="hi_household", period=date(2022, 11, 1))
    content, name, _ = exports.batch_export(batch, "csv")
    rows = list(csv.reader(io.StringIO(content.decode("utf-8-sig"))))
    assert name.startswith("D03-TS") and rows[0][1] == "Họ và tên" and "Nguồn khác (tổ chức, cá nhân)" in rows[0]
    assert rows[1][1].startswith("'=")
    assert rows[1][rows[0].index("Nguồn khác (tổ chức, cá nhân)")] == "379080"
    content, name, _ = exports.batch_export(batch, "xlsx")
    sheet = load_workbook(io.BytesIO(content)).active
    assert sheet["B1"].value == "Họ và tên" and sheet["B2"].value.startswith("'=")


def test_d05_export_for_voluntary_si(hn_commune, make_card):
    make_card(hn_commune, product="si_voluntary")
    batch = batches.batch_create(locality=hn_commune, product="si_voluntary", period=date(2022, 11, 1))
    content, name, _ = exports.batch_export(batch, "csv")
    header = content.decode("utf-8-sig").splitlines()[0]
    assert name.startswith("D05-TS") and "Mức thu nhập làm căn cứ đóng" in header


# --- Card-list import ----------------------------------------------------------------------------


def test_import_enrols_rejects_reports_and_is_idempotent(hn_commune, make_card):
    batch, (a, b, c) = _batch(hn_commune, make_card, 3)
    batches.batch_submit(batch_id=batch.pk)
    rows = cardlist.d10a_rows_for_cards([a, b], reject={b.pk: "Sai ngày sinh"})
    rows.append(
        [9, "Không có", "", "099999999999", "01/01/1990", "HN0100000000", "", "01/11/2022", "31/10/2023", "", ""]
    )
    rows.append([10, "Ngày sai", "", c.member.personal_id, "", "HN01X", "", "32/13/2022", "31/10/2023", "", ""])
    job = cardlist.cardlist_import(content=_csv(rows), file_name="d10a.csv")
    assert (job.enrolled, job.rejected, job.unmatched, job.bad) == (1, 1, 1, 1)
    a.refresh_from_db(), b.refresh_from_db(), c.refresh_from_db()
    assert a.status == "enrolled" and a.valid_from == date(2022, 11, 1) and a.valid_to == date(2023, 10, 31)
    assert b.status == "rejected" and b.rejection_reason == "Sai ngày sinh"
    assert c.status == "submitted"  # bad row: nothing changed, good rows kept
    # b's money went back to the pool of its fund.
    assert balance("donor_funds", FUND) == -(10_000_000 - 2 * 379_080)
    again = cardlist.cardlist_import(content=_csv(rows), file_name="d10a.csv")
    assert (again.enrolled, again.rejected, again.unchanged) == (0, 0, 2)
    assert balance("donor_funds", FUND) == -(10_000_000 - 2 * 379_080)


def test_import_matches_by_si_code_and_reports_ambiguous_rows(hn_commune, make_card):
    a = make_card(hn_commune, si="0112345678")
    b = make_card(hn_commune)
    batches.batch_create(locality=hn_commune, product="hi_household", period=date(2022, 11, 1))
    # Row names a's SI code but b's personal ID: two different open cards.
    rows = [[1, "x", "0112345678", b.member.personal_id, "", "HN1", "", "01/11/2022", "31/10/2023", "", ""]]
    rows.append([2, "x", "0112345678", "", "", "HN2", "", "01/11/2022", "31/10/2023", "", ""])
    job = cardlist.cardlist_import(content=_csv(rows), file_name="d10a.csv")
    assert job.ambiguous == 1 and job.enrolled == 1
    a.refresh_from_db()
    assert a.card_code == "HN2" and a.status == "enrolled"


def test_import_of_a_file_without_card_code_column_is_refused():
    from config.exceptions import ApplicationError

    with pytest.raises(ApplicationError):
        cardlist.cardlist_import(content=b"Ho va ten,CCCD\nA,1\n", file_name="x.csv")


# --- Rollups -------------------------------------------------------------------------------------


def _enrol(card, start, end, code="HN1"):
    from sponsorship.services.cards import card_transition

    for to in ("listed", "submitted"):
        card_transition(card_id=card.pk, to=to)
    card_transition(card_id=card.pk, to="enrolled", card_code=code, valid_from=start, valid_to=end)


def test_rollups_count_new_renewal_and_lapsed_and_are_recomputed_not_incremented(hn_commune, ha_noi, make_card):
    first = make_card(hn_commune, period_start=date(2021, 11, 1))
    _enrol(first, date(2021, 11, 1), date(2022, 10, 31))
    renewal = make_card(hn_commune, member=first.member, period_start=date(2022, 11, 1))
    _enrol(renewal, date(2022, 11, 1), date(2023, 10, 31))
    old = make_card(hn_commune, period_start=date(2021, 1, 1))
    _enrol(old, date(2021, 1, 1), date(2021, 12, 31))
    lapsed = make_card(hn_commune, member=old.member, period_start=date(2022, 6, 1))  # 5 months gap
    _enrol(lapsed, date(2022, 6, 1), date(2023, 5, 31))
    make_card(hn_commune, period_start=date(2022, 12, 1))  # funded: pending
    rollups.rollups_recompute()
    rollups.rollups_recompute()
    prov = EnrollmentRollup.objects.filter(locality=ha_noi, year=2022, type="hi")
    assert {(r.month, r.new_enrollments, r.renewals) for r in prov if r.new_enrollments or r.renewals} == {
        (6, 1, 0),
        (11, 0, 1),
    }
    assert sum(r.pending_vnd for r in prov) == 379_080
    assert (
        EnrollmentRollup.objects.filter(locality=hn_commune, year=2022, type="hi", month=6).get().new_enrollments == 1
    )


def test_cards_advance_by_date(hn_commune, make_card):
    card = make_card(hn_commune)
    _enrol(card, date(2022, 11, 1), date(2023, 10, 31))
    rollups.cards_advance_by_date(date(2022, 12, 1))
    assert Card.objects.get(pk=card.pk).status == "active"
    rollups.cards_advance_by_date(date(2023, 10, 1))
    assert Card.objects.get(pk=card.pk).status == "expiring"
    rollups.cards_advance_by_date(date(2023, 11, 1))
    assert Card.objects.get(pk=card.pk).status == "expired"


# --- Dashboards and scoping ----------------------------------------------------------------------


def test_ha_noi_agency_viewer_cannot_see_ha_tinh(ha_noi, ha_tinh, hn_commune, ht_commune, make_card, make_user):
    targets.seed_targets(2022)
    for commune in (hn_commune, ht_commune):
        card = make_card(commune)
        _enrol(card, date(2022, 11, 1), date(2023, 10, 31), code=f"HN{commune.pk}")
    rollups.rollups_recompute()
    viewer = make_user(Role.AGENCY_VIEWER, ha_noi)
    rows = selectors.dashboard_rows(viewer, year=2022, type="hi")
    assert [r["locality_id"] for r in rows] == [ha_noi.pk]
    assert rows[0]["new"] == 1 and rows[0]["gap"] == 161_000 - 1
    assert selectors.dashboard_rows(viewer, year=2022, type="hi", province_id=ha_tinh.pk) == []
    communes = selectors.dashboard_rows(viewer, year=2022, type="hi", province_id=ha_noi.pk)
    assert [r["locality_id"] for r in communes] == [hn_commune.pk]
    finance = make_user(Role.FINANCE)
    ids = {r["locality_id"] for r in selectors.dashboard_rows(finance, year=2022, type="hi")}
    assert {ha_noi.pk, ha_tinh.pk} <= ids


def test_public_rows_suppress_small_cells(hn_commune, ha_noi, make_card, settings):
    settings.ENROLLMENT_PUBLIC_MIN_CELL = 2
    card = make_card(hn_commune)
    _enrol(card, date(2022, 11, 1), date(2023, 10, 31))
    rollups.rollups_recompute()
    row = next(r for r in selectors.public_rows(year=2022, type="hi") if r["name"] == ha_noi.name)
    assert row["new"] is None
    card2 = make_card(hn_commune)
    _enrol(card2, date(2022, 11, 1), date(2023, 10, 31), code="HN2")
    rollups.rollups_recompute()
    row = next(r for r in selectors.public_rows(year=2022, type="hi") if r["name"] == ha_noi.name)
    assert row["new"] == 2


# --- Reminders -----------------------------------------------------------------------------------


def test_reminders_go_once_per_threshold_to_donor_and_officer(hn_commune, make_card, make_user, mailoutbox):
    officer = make_user(Role.COMMUNE_OFFICER, hn_commune)
    card = make_card(hn_commune)
    _enrol(card, date(2022, 11, 1), date(2023, 10, 31))
    from sponsorship.enrollment.reminders import send_renewal_reminders

    assert send_renewal_reminders(date(2023, 9, 10)) == 2  # 51 days left → the 60-day reminder
    assert send_renewal_reminders(date(2023, 9, 10)) == 0
    recipients = {r for m in mailoutbox for r in m.to}
    assert recipients == {"lan.donor@example.test", officer.email}
    send_renewal_reminders(date(2023, 10, 25))  # 6 days left → the 7-day one
    assert set(ReminderSent.objects.filter(card=card).values_list("days_before", flat=True)) == {60, 7}


def test_importing_a_renewal_marks_the_previous_card_renewed(hn_commune, make_card):
    old = make_card(hn_commune, period_start=date(2021, 11, 1))
    _enrol(old, date(2021, 11, 1), date(2022, 10, 31))
    rollups.cards_advance_by_date(date(2022, 10, 1))  # expiring
    new = make_card(hn_commune, member=old.member, period_start=date(2022, 11, 1))
    batches.batch_create(locality=hn_commune, product="hi_household", period=date(2022, 11, 1))
    job = cardlist.cardlist_import(content=_csv(cardlist.d10a_rows_for_cards([new])), file_name="r.csv")
    assert job.enrolled == 1
    old.refresh_from_db(), new.refresh_from_db()
    assert old.status == "renewed" and new.renewal_of_id == old.pk


def test_xlsx_import_enqueues_the_rollup_job_on_commit(hn_commune, make_card, django_capture_on_commit_callbacks):
    card = make_card(hn_commune)
    batches.batch_create(locality=hn_commune, product="hi_household", period=date(2022, 11, 1))
    content = exports.to_xlsx(cardlist.D10A_HEADERS, cardlist.d10a_rows_for_cards([card]))
    with django_capture_on_commit_callbacks() as callbacks:
        job = cardlist.cardlist_import(content=content, file_name="D10a.xlsx")
    assert job.enrolled == 1 and len(callbacks) == 1
    card.refresh_from_db()
    assert card.status == "enrolled" and card.valid_to == date(2023, 10, 31)


def test_beat_runs_the_rollups_nightly_and_the_daily_job(settings):
    tasks = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert {"sponsorship.tasks.enrollment_rollups_recompute", "sponsorship.tasks.enrollment_daily"} <= tasks


def test_a_reminder_that_failed_to_send_is_retried_by_the_next_run(hn_commune, make_card, mailoutbox, monkeypatch):
    from sponsorship.enrollment import reminders

    card = make_card(hn_commune)
    _enrol(card, date(2022, 11, 1), date(2023, 10, 31))

    def refuse(*args, **kwargs):
        raise ConnectionRefusedError("smtp down")

    monkeypatch.setattr(reminders, "send_mail", refuse)  # the mail server is outside the process
    assert reminders.send_renewal_reminders(date(2023, 9, 10)) == 0
    assert not ReminderSent.objects.filter(card=card).exists()  # no claim for a mail never sent
    monkeypatch.undo()
    assert reminders.send_renewal_reminders(date(2023, 9, 10)) == 1
    assert [m.to for m in mailoutbox] == [["lan.donor@example.test"]]
    assert ReminderSent.objects.filter(card=card, days_before=60).count() == 1
