"""Every importer fed malformed files → a clear error and nothing half-written.

Importers: the registry household list (CSV/XLSX, via the API and its Celery task), the bank
statement (CSV/XLSX, via the finance API), the agency card list D10a-TS (CSV/XLSX). For each
malformed file the table rows the importer writes are counted before and after."""

from __future__ import annotations

import io
from datetime import date

import pytest
from django.test import Client
from django.urls import reverse
from openpyxl import Workbook

from beneficiaries.identifiers import make_personal_id
from beneficiaries.models import Household, ImportJob, ImportStatus, Member
from beneficiaries.services.imports import import_job_run
from config.exceptions import ApplicationError
from sponsorship.card_models import Card
from sponsorship.enrollment.cardlist import cardlist_import
from sponsorship.enrollment.models import CardListImport
from sponsorship.models import BankStatement, BankStatementLine

from .world import build_world

REGISTRY_HEADER = "Mã hộ,Họ và tên,Ngày sinh,Giới tính,Số CCCD/Số định danh cá nhân,Quan hệ với chủ hộ,Mã xã"


def _xlsx(rows) -> bytes:
    wb = Workbook()
    ws = wb.active
    for row in rows:
        ws.append(row)
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def registry_rows(commune_code: int, n: int, start: int = 1) -> list[str]:
    rows = []
    for i in range(start, start + n):
        dob = date(1980, 1, 1)
        pid = make_personal_id(province_code=42, date_of_birth=dob, sex="male", serial=500_000 + i)
        rows.append(f"HX{i},Người Thứ {i},01/01/1980,Nam,{pid},Chủ hộ,{commune_code}")
    return rows


def malformed_files(good_csv: bytes, header: list[str], bad_row: list) -> dict[str, tuple[str, bytes]]:
    """name → (file name, content): the ways a file goes wrong."""
    good_xlsx = _xlsx([header, bad_row])
    return {
        "empty": ("list.csv", b""),
        "blank lines only": ("list.csv", b"\n\n  \n"),
        "Windows-1258 encoding": ("list.csv", good_csv.decode().encode("cp1258", errors="replace")),
        "UTF-16 encoding": ("list.csv", good_csv.decode().encode("utf-16")),
        "binary garbage": ("list.csv", bytes(range(256)) * 8),
        "a workbook named .csv": ("list.csv", good_xlsx),
        "truncated XLSX": ("list.xlsx", good_xlsx[: len(good_xlsx) // 2]),
        "text named .xlsx": ("list.xlsx", good_csv),
        "missing columns": ("list.csv", "Tên,Tuổi\nAn,30\n".encode()),
        "header only": ("list.csv", header_line(header).encode() + b"\n"),
        "mixed types (XLSX)": ("list.xlsx", _xlsx([header, bad_row, [None] * len(header), [3.5] * len(header)])),
    }


def header_line(header: list[str]) -> str:
    return ",".join(header)


# --- Registry household list -------------------------------------------------------------------


@pytest.fixture
def world(db):
    return build_world()


def _registry_counts():
    return Household.objects.count(), Member.objects.count()


REGISTRY_BAD_ROW = ["HX1", 12345, 44197.0, True, 4.2e11, None, "not a code"]


@pytest.mark.parametrize(
    "case",
    list(
        malformed_files(
            ("\n".join([REGISTRY_HEADER, "HX1,An,01/01/1980,Nam,1,Chủ hộ,1"]) + "\n").encode(),
            REGISTRY_HEADER.split(","),
            REGISTRY_BAD_ROW,
        )
    ),
)
def test_registry_import_refuses_malformed_files_cleanly(world, case, report):
    commune = world.commune_x.code
    good = ("\n".join([REGISTRY_HEADER, *registry_rows(commune, 2)]) + "\n").encode()
    name, content = malformed_files(good, REGISTRY_HEADER.split(","), REGISTRY_BAD_ROW)[case]
    before = _registry_counts()
    client = Client()
    client.force_login(world.users["reviewer_x"])
    response = client.post(reverse("api-registry-import-create"), {"file": _named(content, name)})
    assert response.status_code in (202, 400), response.content
    if response.status_code == 202:
        job = import_job_run(job_id=response.json()["id"])
        if job.status == ImportStatus.DONE:
            # Row-level problems: the job finished and names every refused row.
            assert job.rows_created == 0 and job.rows_failed >= 1, (job.rows_created, job.rows_failed)
            assert job.row_errors.exists()
        else:
            assert job.status == ImportStatus.FAILED and job.error.strip(), (job.status, job.error)
    else:
        assert response.json()["message"].strip()
    assert _registry_counts() == before
    report.add("importers", malformed_files_tried=1)


def _named(content: bytes, name: str):
    f = io.BytesIO(content)
    f.name = name
    return f


def test_registry_import_failing_late_writes_nothing(world, settings, report):
    """Good rows first (more than one write batch), then a UTF-16 tail past the first 64 KB:
    the whole import rolls back."""
    good = "\n".join([REGISTRY_HEADER, *registry_rows(world.commune_x.code, 1500)]) + "\n"
    assert len(good.encode()) > 64 * 1024
    content = good.encode() + "HX9999,Trần,01/01/1990".encode("utf-16")
    before = _registry_counts()
    client = Client()
    client.force_login(world.users["reviewer_x"])
    response = client.post(reverse("api-registry-import-create"), {"file": _named(content, "late.csv")})
    assert response.status_code == 202
    job = import_job_run(job_id=response.json()["id"])
    assert job.status == ImportStatus.FAILED and "UTF-8" in job.error
    assert _registry_counts() == before
    # Too many rows, found while streaming: also nothing.
    settings.REGISTRY_IMPORT_MAX_ROWS = 1000
    response = client.post(reverse("api-registry-import-create"), {"file": _named(good.encode(), "big.csv")})
    job = import_job_run(job_id=response.json()["id"])
    assert job.status == ImportStatus.FAILED and job.error
    assert _registry_counts() == before
    report.add("importers", late_failures_rolled_back=2)


def test_registry_import_refuses_a_huge_file_before_storing_it(world, settings):
    settings.REGISTRY_IMPORT_MAX_BYTES = 2**20
    client = Client()
    client.force_login(world.users["reviewer_x"])
    jobs = ImportJob.objects.count()
    huge = _named(b"x" * (2 * 2**20), "huge.csv")
    response = client.post(reverse("api-registry-import-create"), {"file": huge}, HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 400 and "too large" in response.json()["message"]
    assert ImportJob.objects.count() == jobs


# --- Bank statement ----------------------------------------------------------------------------

BANK_HEADER = ["Ngày", "Số tiền", "Nội dung", "Số bút toán"]
BANK_BAD_ROW = [12345, "abc", 3.14, None]


def _bank_counts():
    return BankStatement.objects.count(), BankStatementLine.objects.count()


@pytest.mark.parametrize(
    "case",
    list(malformed_files(b"Ngay,So tien,Noi dung\n05/01/2026,200000,ung ho\n", BANK_HEADER, BANK_BAD_ROW))
    + ["one bad line after good ones"],
)
def test_bank_statement_upload_refuses_malformed_files_cleanly(world, case, report):
    good = "Ngày,Số tiền,Nội dung,Số bút toán\n05/01/2026,200000,ủng hộ CTHARD0001,FT1\n".encode()
    files = malformed_files(good, BANK_HEADER, BANK_BAD_ROW)
    files["one bad line after good ones"] = ("st.csv", good + b"06/01/2026,nope,x,FT2\n")
    name, content = files[case]
    before = _bank_counts()
    client = Client()
    client.force_login(world.users["finance"])
    response = client.post(reverse("api-statement-upload"), {"file": _named(content, name)})
    assert response.status_code == 400, (response.status_code, response.content[:300])
    assert response.json()["message"].strip()
    assert _bank_counts() == before
    report.add("importers", malformed_files_tried=1)


def test_bank_statement_page_shows_the_error(world):
    client = Client()
    client.force_login(world.users["finance"])
    before = _bank_counts()
    content = "Ngày,Số tiền,Nội dung\n05/01/2026,200000,ủng hộ\n".encode("utf-16")
    response = client.post(reverse("finance-home"), {"file": _named(content, "st.csv")}, HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 200 and "UTF-8" in response.content.decode()
    assert _bank_counts() == before


# --- Agency card list (D10a-TS) ----------------------------------------------------------------

D10A_HEADER = ["STT", "Họ và tên", "Mã số BHXH", "Số CCCD/ĐDCN", "Ngày sinh", "Mã thẻ", "Từ ngày", "Đến ngày"]
D10A_BAD_ROW = [1, 12345, 4.2e9, 42185907531.0, "hôm qua", 7, 44197, "31/02/2026"]


@pytest.mark.parametrize(
    "case", list(malformed_files(b"STT,Ma the\n1,X\n", D10A_HEADER, D10A_BAD_ROW)) + ["bad dates and types (CSV)"]
)
def test_cardlist_import_refuses_malformed_files_cleanly(world, case, report):
    good = (
        "\n".join(
            [",".join(D10A_HEADER), "1,Hoàng Thị Kiểm,,042185907531,27/03/1985,HN4010000000001,01/01/2026,31/12/2026"]
        )
        + "\n"
    ).encode()
    files = malformed_files(good, D10A_HEADER, D10A_BAD_ROW)
    files["bad dates and types (CSV)"] = (
        "d10a.csv",
        ("\n".join([",".join(D10A_HEADER), "1,X,,042185907531,x,HN1,31/02/2026,yesterday"]) + "\n").encode(),
    )
    name, content = files[case]
    cards = list(Card.objects.order_by("pk").values_list("pk", "status", "card_code"))
    jobs = CardListImport.objects.count()
    try:
        job = cardlist_import(content=content, file_name=name, by=world.users["finance"])
    except ApplicationError as exc:
        assert exc.message.strip()
        assert CardListImport.objects.count() == jobs
    else:
        # Readable file, unusable rows: each is reported as bad, no card changes.
        assert job.enrolled == job.rejected == 0 and (job.bad + job.unmatched) >= 1, job.report
    assert list(Card.objects.order_by("pk").values_list("pk", "status", "card_code")) == cards
    report.add("importers", malformed_files_tried=1)
