"""The import validates in SQL (`_validation_sql`); the same rules in Python (`validate_rows`,
with `personal_id_errors` of the staff form) are the reference. Random rows, good and bad,
go through both: the same rows are refused, with the same (field, reason), and the good rows
get the same stored values."""

from datetime import date, timedelta

import pytest
from django.db import connection
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from beneficiaries.identifiers import make_personal_id
from beneficiaries.services import imports
from beneficiaries.services.imports import (
    COLUMNS,
    ERROR_FIELDS,
    FLAG_FIELDS,
    FOLD_SQL,
    SQUASH_SQL,
    Context,
    _create_communes,
    _create_raw,
    _messages,
    _sql_params,
    _validate,
    validate_rows,
)

FIELDS = list(COLUMNS)
# Letters that fold in interesting ways, digits, separators, whitespace.
ALPHABET = "aAđĐăâêôơưẠỹữỮnNmMxX0123456789 /-.T\t\u00a0,\"'é"


class _NoProgress:
    def loading(self, rows):
        pass


def _pid(draw_dob, sex, serial, province=42):
    return make_personal_id(province_code=province, date_of_birth=draw_dob, sex=sex, serial=serial)


@st.composite
def rows(draw):
    today = timezone.localdate()
    edges = [date(1899, 12, 31), date(1900, 1, 1), date(2000, 2, 29), today, today + timedelta(days=1)]
    dob = draw(st.one_of(st.sampled_from(edges), st.dates(min_value=date(1890, 1, 1), max_value=date(2030, 12, 31))))
    sex = draw(st.sampled_from(["male", "female"]))
    good_pid = _pid(dob, sex, draw(st.integers(0, 5)), draw(st.sampled_from([42, 1, 3, 99])))
    text = st.text(alphabet=ALPHABET, max_size=12)

    def pick(*choices):
        return draw(st.one_of(st.sampled_from(choices), text))

    raw = {
        "full_name": pick("Nguyễn Văn Hùng", "  Lê  Thị\tHoa ", "ĐỖ VĂN LÂM", "", "Nguye\u0302\u0303n An"),
        "date_of_birth": pick(
            f"{dob:%d/%m/%Y}",
            dob.isoformat(),
            f"{dob:%d-%m-%Y}",
            f"{dob:%d.%m.%Y}",
            f"{dob:%d/%m/%Y} 00:00",
            f"{dob.isoformat()}T00:00:00",
            "31/02/2000",
            "29/02/2000",
            "29/02/1900",
            "1/2/3",
            "01/02-2000",
            "00/01/2000",
            "01/13/2000",
            "01/01/0000",
            "01/01/99999",
        ),
        "sex": pick("Nam" if sex == "male" else "Nữ", "nam", "NỮ", "male", "F", "nu\u0303", "?", ""),
        "personal_id": pick(
            good_pid,
            good_pid[1:],
            good_pid[:6] + " " + good_pid[6:],
            good_pid[:11],
            "０" * 12,
            good_pid[:3] + "7" + good_pid[4:],
            "000100000001",
            "",
        ),
        "commune_code": pick("18073", "18074", "018073", "4", "99999", "", "1e3", "０"),
        "household_ref": pick("", "HT1", "HT2", "x" * 50),
        "si_code": pick("", "4201234567", "42012345", "420123456７"),
        "relation": pick("Chủ hộ", "Vợ", "con", "CHÁU", "Khác", "", "head", "?"),
        "poverty_class": pick("Hộ nghèo", "Hộ cận nghèo", "nông lâm ngư nghiệp", "", "poor", "giàu"),
        "certificate_year": pick("", "2024", "1999", str(timezone.localdate().year + 2), "02024", "２０２４"),
        "card_valid_until": pick("", "31/12/2026", "2026-12-31", "31/12"),
        "card_group": pick("", "HN", "CN", "HGĐNN"),
        "address": pick("", "Tổ 1", "a\tb"),
        **{f: pick("", "x", "X", "có", "Có", "1", "0", "yes", "không", "?") for f in FLAG_FIELDS},
    }
    return raw


def _sql(raws, ctx, msg):
    with connection.cursor() as cursor:
        for table in ("import_val", "import_raw", "import_communes"):
            cursor.execute(f"DROP TABLE IF EXISTS {table}")
        _create_communes(cursor, ctx)
        _create_raw(cursor, len(FIELDS))
        imports._copy_records(cursor, [[r.get(f, "") for f in FIELDS] for r in raws], len(FIELDS), _NoProgress())
        params = _sql_params(ctx, msg)
        _validate(cursor, FIELDS, len(FIELDS), params)
        errors_sql = ", ".join(f"e_{f}" for f in ERROR_FIELDS)
        cursor.execute(
            # The name is squashed and folded per distinct name when members are written
            # (`_good_sql`), with the same expressions.
            f"""SELECT row_number, ok, e_dup, {errors_sql}, locality_id, ref, {SQUASH_SQL}, {FOLD_SQL}, dob, sex_v,
                pid, relation_v, poverty_v, year_v, valid_until, {", ".join(f"{f}_v" for f in FLAG_FIELDS)}
            FROM import_val ORDER BY row_number""",
            params,
        )
        return cursor.fetchall()


@pytest.mark.django_db
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(rows(), min_size=1, max_size=8))
def test_sql_validation_agrees_with_the_python_rules(officer, thanh_sen, tran_phu, raws):
    ctx = Context.for_user(officer, timezone.localdate())
    msg = _messages()
    # Raw cells are stripped when read (the SQL does the same with btrim).
    stripped = [{k: v.strip() for k, v in r.items()} for r in raws]
    good, errors = validate_rows(list(enumerate(stripped, start=2)), ctx, msg)
    sql_rows = _sql(raws, ctx, msg)
    sql_errors, sql_good = [], {}
    for row in sql_rows:
        n, ok, e_dup = row[0], row[1], row[2]
        reasons = dict(zip(ERROR_FIELDS, row[3 : 3 + len(ERROR_FIELDS)], strict=True))
        reasons["personal_id"] = reasons["personal_id"] or e_dup
        sql_errors += [(n, f, reasons[f]) for f in ERROR_FIELDS if reasons[f] is not None]
        if ok:
            rest = row[3 + len(ERROR_FIELDS) :]
            keys = ["locality_id", "household_ref", "full_name", "name_ascii", "date_of_birth", "sex", "personal_id"]
            keys += ["relation", "poverty_class", "certificate_year", "card_valid_until", *FLAG_FIELDS]
            sql_good[n] = dict(zip(keys, rest, strict=True))
    assert sql_errors == [(e.row_number, e.field, e.reason) for e in errors]
    assert sorted(sql_good) == sorted(good)
    for n, values in sql_good.items():
        expected = good[n]
        values["full_name"] = values["full_name"][:200]
        values["name_ascii"] = values["name_ascii"][:200]
        assert values == {k: expected[k] for k in values}, n


def test_a_file_with_blank_lines_goes_through_pythons_reader(officer, thanh_sen, tmp_path, settings):
    settings.MEDIA_ROOT = tmp_path
    # PostgreSQL's CSV reader refuses blank lines; Python's reader takes over, row numbers kept.
    d = date(1990, 2, 2)
    path = tmp_path / "x.csv"
    pid1 = make_personal_id(province_code=42, date_of_birth=d, sex="male", serial=1)
    path.write_text(
        f"full_name,date_of_birth,sex,personal_id,commune_code\n\nAn,02/02/1990,Nam,{pid1},18073\n,,\nB,x,Nam,1,18073\n"
    )
    from django.core.files.uploadedfile import SimpleUploadedFile

    from beneficiaries.services.imports import import_job_create, import_job_run

    job = import_job_create(user=officer, uploaded=SimpleUploadedFile("x.csv", path.read_bytes()))
    job = import_job_run(job_id=job.pk)
    assert (job.status, job.rows_created, job.rows_failed) == ("done", 1, 1), job.error
    assert {n for (n,) in job.row_errors.values_list("row_number")} == {5}
