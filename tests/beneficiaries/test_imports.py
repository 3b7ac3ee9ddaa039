import io
from datetime import date

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from openpyxl import Workbook

from beneficiaries.identifiers import make_personal_id
from beneficiaries.models import Household, ImportStatus, Member, MemberStatus, MemberTransition
from beneficiaries.selectors import member_history
from beneficiaries.services.imports import import_errors_csv, import_job_create, import_job_run
from beneficiaries.services.review import locality_freeze
from beneficiaries.tasks import import_job_run as import_task

HEADER = (
    "Mã hộ,Họ và tên,Ngày sinh,Giới tính,Số CCCD/Số định danh cá nhân,Mã số BHXH,Dân tộc,"
    "Quan hệ với chủ hộ,Địa chỉ,Mã xã,Hộ nghèo/Hộ cận nghèo,Học sinh/Sinh viên"
)


def pid(dob, sex, serial):
    return make_personal_id(province_code=42, date_of_birth=dob, sex=sex, serial=serial)


def good_rows(commune_code=18073):
    d1, d2, d3 = date(1975, 3, 4), date(1978, 9, 30), date(2008, 1, 15)
    return [
        f"HT1,Nguyễn Văn Hùng,04/03/1975,Nam,{pid(d1, 'male', 1)},4201234567,Kinh,Chủ hộ,Tổ 1,"
        f"{commune_code},Hộ cận nghèo,",
        f"HT1,Lê Thị Hoa,30/09/1978,Nữ,{pid(d2, 'female', 2)},,Kinh,Vợ,Tổ 1,{commune_code},Hộ cận nghèo,",
        f"HT1,Nguyễn Văn Minh,15/01/2008,Nam,{pid(d3, 'male', 3)},,Kinh,Con,Tổ 1,{commune_code},Hộ cận nghèo,x",
    ]


def upload(user, text=None, name="danh-sach.csv", raw=None):
    content = raw if raw is not None else text.encode("utf-8")
    return import_job_create(user=user, uploaded=SimpleUploadedFile(name, content))


def run(user, text=None, **kw):
    job = upload(user, text, **kw)
    return import_job_run(job_id=job.pk)


@pytest.fixture(autouse=True)
def media(tmp_path, settings):
    settings.MEDIA_ROOT = tmp_path


def test_officer_imports_a_commune_list_and_sees_which_rows_are_bad_and_why(officer, thanh_sen):
    bad = [
        "HT2,Trần Văn Sai,01/01/1990,Nam,042080000009,,Kinh,Chủ hộ,Tổ 2,18073,,",  # ID says 1980
        "HT3,,01/01/1990,Nam,,,Kinh,Chủ hộ,Tổ 3,18073,,",  # no name, no ID
        "HT4,Phạm Thị Lạ,01/01/1990,Nữ,042190000011,,Kinh,Chủ hộ,Tổ 4,99999,,",  # unknown commune
    ]
    job = run(officer, "\n".join([HEADER, *good_rows(), *bad]) + "\n")
    assert job.status == ImportStatus.DONE, job.error
    assert (job.rows_total, job.rows_done, job.rows_created, job.rows_failed) == (6, 6, 3, 3)
    errors = set(job.row_errors.values_list("row_number", "field"))
    assert {(5, "date_of_birth"), (6, "full_name"), (6, "personal_id"), (7, "commune_code")} <= errors
    assert Household.objects.get().members.count() == 3
    assert set(Member.objects.values_list("status", flat=True)) == {MemberStatus.SUBMITTED}
    # The import writes no history rows: each member's first entry is derived from its row.
    assert MemberTransition.objects.count() == 0
    for member in Member.objects.all():
        first = member_history(member=member)[0]
        assert (first.from_status, first.to_status, first.actor, first.at) == (
            "",
            MemberStatus.SUBMITTED,
            officer,
            member.created_at,
        )
        assert first.reason == f"Imported from danh-sach.csv, job {job.pk}"
    csv_text = import_errors_csv(job=job)
    assert "5,date_of_birth," in csv_text and "7,commune_code," in csv_text


def test_importing_the_same_file_again_changes_nothing(officer, thanh_sen):
    text = "\n".join([HEADER, *good_rows()])
    run(officer, text)
    before = list(Member.objects.order_by("id").values())
    again = run(officer, text)
    assert again.status == ImportStatus.DONE
    assert (again.rows_created, again.rows_unchanged) == (0, 3)
    assert list(Member.objects.order_by("id").values()) == before
    assert MemberTransition.objects.count() == 0


def test_english_headers_semicolons_and_bom_are_accepted(officer, thanh_sen):
    d = date(1990, 2, 2)
    text = (
        "\ufefffull_name;date_of_birth;sex;personal_id;commune_code\n"
        f"Hoàng Văn Tú;1990-02-02;male;{pid(d, 'male', 77)};18073\n"
    )
    job = run(officer, text)
    assert job.rows_created == 1
    assert Member.objects.get().household.external_ref == pid(d, "male", 77)


def test_xlsx_list_imports_like_csv(officer, thanh_sen):
    wb = Workbook()
    ws = wb.active
    ws.append(HEADER.split(","))
    for line in good_rows():
        ws.append(line.split(","))
    buf = io.BytesIO()
    wb.save(buf)
    job = run(officer, raw=buf.getvalue(), name="ds.xlsx")
    assert job.status == ImportStatus.DONE, job.error
    assert job.rows_created == 3


@pytest.mark.parametrize(
    "raw,code_word",
    [
        (b"", "empty"),
        (HEADER.encode() + b"\n", "no rows"),
        ("Họ và tên,Ngày sinh\nAn,01/01/1990\n".encode(), "Missing columns"),
        (("\n".join([HEADER, *good_rows()])).encode("cp1258", errors="replace"), "UTF-8"),
    ],
)
def test_file_level_errors_fail_clearly_and_write_nothing(officer, thanh_sen, raw, code_word):
    job = run(officer, raw=raw)
    assert job.status == ImportStatus.FAILED
    assert code_word.lower() in job.error.lower()
    assert not Member.objects.exists() and not Household.objects.exists()


def test_bad_encoding_deep_in_the_file_writes_nothing(officer, thanh_sen, settings):
    rows = good_rows() + [
        f"H{i},Người {i},01/01/1990,Nam,{pid(date(1990, 1, 1), 'male', 100 + i)},,,,,18073,," for i in range(3000)
    ]
    raw = ("\n".join([HEADER, *rows]) + "\n").encode() + "Trần,01/01/1990".encode("utf-16")
    job = run(officer, raw=raw)
    assert job.status == ImportStatus.FAILED
    assert not Member.objects.exists()


def test_file_too_large_is_refused_before_anything_is_stored(officer, thanh_sen, settings):
    settings.REGISTRY_IMPORT_MAX_BYTES = 100
    from config.exceptions import ApplicationError

    with pytest.raises(ApplicationError, match="too large"):
        upload(officer, "\n".join([HEADER, *good_rows()]))


def test_too_many_rows_fail_the_job(officer, thanh_sen, settings):
    settings.REGISTRY_IMPORT_MAX_ROWS = 2
    job = run(officer, "\n".join([HEADER, *good_rows()]))
    assert job.status == ImportStatus.FAILED and not Member.objects.exists()


def test_rows_of_another_commune_or_a_frozen_one_are_refused(officer, reviewer_ha_tinh, thanh_sen, tran_phu):
    job = run(officer, "\n".join([HEADER, *good_rows(commune_code=18074)]))
    assert job.rows_failed == 3 and set(job.row_errors.values_list("field", flat=True)) == {"commune_code"}
    locality_freeze(user=reviewer_ha_tinh, locality=thanh_sen)
    job = run(officer, "\n".join([HEADER, *good_rows()]))
    assert job.rows_failed == 3 and "frozen" in job.row_errors.first().reason


def test_duplicate_personal_id_inside_a_file_is_reported_on_the_second_row(officer, thanh_sen):
    rows = good_rows()
    job = run(officer, "\n".join([HEADER, *rows, rows[0]]))
    assert job.rows_created == 3
    assert list(job.row_errors.values_list("row_number", "field")) == [(5, "personal_id")]


def test_near_duplicates_in_an_import_are_flagged(officer, thanh_sen):
    d = date(1960, 6, 6)
    rows = [
        f"A,Đỗ Văn Lâm,06/06/1960,Nam,{pid(d, 'male', 501)},,,Chủ hộ,,18073,,",
        f"B,DO VAN LAM,06/06/1960,Nam,{pid(d, 'male', 502)},,,Chủ hộ,,18073,,",
    ]
    run(officer, "\n".join([HEADER, *rows]))
    assert Member.objects.filter(is_possible_duplicate=True).count() == 2


def test_the_celery_task_runs_the_import_and_is_safe_to_run_twice(officer, thanh_sen):
    job = upload(officer, "\n".join([HEADER, *good_rows()]))
    import_task.apply(args=[job.pk])
    import_task.apply(args=[job.pk])
    job.refresh_from_db()
    assert job.status == ImportStatus.DONE and job.rows_created == 3
    assert Member.objects.count() == 3


def test_a_vietnamese_officer_reads_the_file_error_in_vietnamese(officer, thanh_sen):
    from django.utils import translation

    with translation.override("vi"):
        job = run(officer, raw=b"")
    assert job.error == "Tệp trống."


def test_a_list_split_into_many_batches_imports_like_one(officer, thanh_sen, monkeypatch):
    from beneficiaries.services import imports

    monkeypatch.setattr(imports, "BATCH_ROWS", 2)  # the household HT1 spans two batches
    rows = good_rows()
    job = run(officer, "\n".join([HEADER, *rows, rows[1]]))
    assert (job.rows_done, job.rows_created, job.rows_failed) == (4, 3, 1)
    assert Household.objects.get().members.count() == 3


def test_error_file_does_not_let_a_spreadsheet_run_an_uploaded_formula(officer, thanh_sen):
    d = date(1990, 2, 2)
    job = run(
        officer, f"full_name,date_of_birth,sex,personal_id,commune_code\nA,02/02/1990,Nam,{pid(d, 'male', 9)},=1+2\n"
    )
    assert ": '=1+2" in import_errors_csv(job=job)


def test_a_transient_database_error_hands_the_job_back_for_a_retry(officer, thanh_sen, monkeypatch):
    from django.db import OperationalError

    from beneficiaries.services import imports

    job = upload(officer, "\n".join([HEADER, *good_rows()]))

    def lost(*args, **kwargs):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(imports, "_copy_file", lost)
    monkeypatch.setattr(imports.connection, "close", lambda: None)  # keep the test's connection
    with pytest.raises(OperationalError):
        import_job_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == ImportStatus.PENDING and not Member.objects.exists()
    monkeypatch.undo()
    assert import_job_run(job_id=job.pk).rows_created == 3


def test_a_nul_byte_deep_in_the_file_fails_as_an_encoding_error_and_writes_nothing(officer, thanh_sen):
    rows = good_rows() + [
        f"H{i},Người {i},01/01/1990,Nam,{pid(date(1990, 1, 1), 'male', 100 + i)},,,,,18073,," for i in range(3000)
    ]
    raw = ("\n".join([HEADER, *rows]) + "\n").encode() + b"HX,Tr\x00n,01/01/1990,Nam,,,,,,18073,,\n"
    job = run(officer, raw=raw)
    assert job.status == ImportStatus.FAILED and "UTF-8" in job.error
    assert not Member.objects.exists() and not Household.objects.exists()


def test_quoted_fields_with_commas_and_line_breaks_keep_the_row_numbers(officer, thanh_sen):
    d = date(1975, 3, 4)
    rows = [
        f'HT1,"Nguyễn Văn Hùng",04/03/1975,Nam,{pid(d, "male", 1)},,Kinh,Chủ hộ,"Tổ 1, thôn ""Đông""\nxã X",18073,,',
        "HT9,Sai Ngày,31/02/1975,Nam,042075000002,,Kinh,Chủ hộ,,18073,,",
    ]
    job = run(officer, "\n".join([HEADER, *rows]) + "\n")
    assert (job.rows_created, job.rows_failed) == (1, 1)
    assert list(job.row_errors.values_list("row_number", "field")) == [(3, "date_of_birth")]
    assert Household.objects.get().address == 'Tổ 1, thôn "Đông"\nxã X'


def test_progress_reaches_the_total(officer, thanh_sen):
    job = run(officer, "\n".join([HEADER, *good_rows()]))
    assert (job.rows_done, job.rows_total) == (3, 3)


def test_a_household_registered_while_the_import_runs_is_used_not_doubled(officer, thanh_sen, monkeypatch):
    from beneficiaries.services import imports

    theirs = {}
    real = imports._TimedCursor.execute

    def execute(self, sql, params=None):
        out = real(self, sql, params)
        # Right after the import found HT1 unregistered, someone else registers it.
        if sql.lstrip().startswith("CREATE TEMP TABLE import_hh"):
            theirs["hh"] = Household.objects.create(locality=thanh_sen, external_ref="HT1", address="Đăng ký tay")
        return out

    monkeypatch.setattr(imports._TimedCursor, "execute", execute)
    job = run(officer, "\n".join([HEADER, *good_rows()]))
    assert job.status == ImportStatus.DONE, job.error
    assert job.rows_created == 3
    assert Household.objects.count() == 1
    assert set(Member.objects.values_list("household_id", flat=True)) == {theirs["hh"].pk}


def test_a_household_and_a_member_registered_meanwhile_stay_and_the_import_uses_them(officer, thanh_sen, monkeypatch):
    # Someone registers household HT1 and one of its people after the import has found neither
    # in the registry (right after its working tables of households and new members), before
    # it writes them: its plain inserts fail, and it retries leaving theirs as they are, its
    # other members going into their household.
    from beneficiaries.services import imports

    real = imports._TimedCursor.execute
    registered = {}

    def execute(self, sql, params=None):
        out = real(self, sql, params)
        if sql.lstrip().startswith("CREATE TEMP TABLE import_hh") and "household" not in registered:
            registered["household"] = Household.objects.create(
                locality=thanh_sen, external_ref="HT1", address="Theirs", created_by=officer
            )
        if sql.lstrip().startswith("CREATE TEMP TABLE import_good") and "member" not in registered:
            registered["member"] = Member.objects.create(
                household=registered["household"], locality=thanh_sen, full_name="Lê Thị Hoa",
                name_ascii="le thi hoa", date_of_birth=date(1978, 9, 30), sex="female",
                personal_id=pid(date(1978, 9, 30), "female", 2), status=MemberStatus.DRAFT,
            )  # fmt: skip
        return out

    monkeypatch.setattr(imports._TimedCursor, "execute", execute)
    job = run(officer, "\n".join([HEADER, *good_rows()]) + "\n")
    assert job.status == ImportStatus.DONE, job.error
    assert (job.rows_created, job.rows_unchanged, job.rows_failed) == (2, 1, 0)
    household = Household.objects.get()
    assert household == registered["household"] and household.address == "Theirs"
    assert set(household.members.values_list("full_name", "status")) == {
        ("Nguyễn Văn Hùng", MemberStatus.SUBMITTED),
        ("Lê Thị Hoa", MemberStatus.DRAFT),
        ("Nguyễn Văn Minh", MemberStatus.SUBMITTED),
    }
