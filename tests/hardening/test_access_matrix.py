"""Access control: every route × ten personas against the matrix in access_matrix.py, and
personal data (personal ID, date of birth, address, phone) checked in every response body."""

from __future__ import annotations

import io
import json

import pytest
from django.test import Client
from django.urls import reverse

from beneficiaries.models import PersonalDataView

from .access_matrix import MATRIX, Row
from .routes import all_routes
from .world import ROLES, World, build_world, donor_a_private, pii_values

# Personas that must never see the commune-X household's personal data, and those that must
# see it unmasked on its detail pages (staff whose scope covers commune X, and the superuser).
NO_PII_ROLES = {"anon", "donor_a", "donor_b", "business", "reviewer_y"}
UNMASKED_ROLES = {"officer_x", "reviewer_x", "agency", "admin"}
# Donor A's own profile (phone, address, tax code) is theirs, finance's and the admin's only.
NO_DONOR_A_ROLES = set(ROLES) - {"donor_a", "finance", "admin"}

LOGIN_PATHS = ("/accounts/login/", "/admin/login/")


def outcome(response) -> str:
    code = response.status_code
    if code >= 500:
        return f"server error {code}"
    if code in (401, 403, 404):
        return "deny"
    if code in (301, 302, 303, 307, 308):
        return "deny" if response["Location"].split("?")[0].endswith(LOGIN_PATHS) else "allow"
    if 200 <= code < 300 or code in (400, 409, 422):
        return "allow"
    return f"unexpected {code}"


def body_text(response) -> str:
    content = b"".join(response.streaming_content) if response.streaming else response.content
    ctype = response.get("Content-Type", "")
    if "spreadsheetml" in ctype:
        from openpyxl import load_workbook

        wb = load_workbook(io.BytesIO(content), read_only=True)
        return "\n".join(
            " ".join("" if v is None else str(v) for v in row)
            for ws in wb.worksheets
            for row in ws.iter_rows(values_only=True)
        )
    if "pdf" in ctype:
        return ""  # receipts carry the donor's own data only; the PDF text is compressed
    return content.decode("utf-8", errors="replace")


def url_of(row: Row, world: World) -> str:
    if row.name == "admin/*":
        return reverse("admin:index")
    return reverse(row.name, kwargs=row.kwargs(world) if row.kwargs else None)


def send(client: Client, row: Row, world: World, role: str):
    url = url_of(row, world)
    if row.method == "GET":
        return client.get(url)
    data = row.data(world, role) if row.data else {}
    if row.body == "json":
        return client.post(url, data=json.dumps(data), content_type="application/json")
    return client.post(url, data=data)  # form and multipart: the test client encodes files itself


def client_for(world: World, role: str) -> Client:
    client = Client()
    user = world.users[role]
    if user is not None:
        client.force_login(user)
    return client


def coverage(routes: set[str]) -> tuple[list[str], list[str]]:
    """(routes without a row, rows without a route)."""
    named = {row.name for row in MATRIX}
    return sorted(routes - named), sorted(named - routes)


def test_every_route_has_a_row_and_every_row_a_route(report):
    routes = set(all_routes())
    missing, stale = coverage(routes)
    report.add("access matrix", routes=len(routes), rows=len(MATRIX), roles=len(ROLES), cells=len(MATRIX) * len(ROLES))
    assert not missing, f"routes with no row in tests/hardening/access_matrix.py: {missing}"
    assert not stale, f"matrix rows for routes that no longer exist: {stale}"
    assert len({row.id for row in MATRIX}) == len(MATRIX), "row ids must be unique"


def test_a_new_route_without_a_row_is_noticed(settings):
    settings.ROOT_URLCONF = "tests.hardening.urls_extra"
    missing, stale = coverage(set(all_routes()))
    assert missing == ["secret-new-page"] and not stale


@pytest.mark.parametrize("row", MATRIX, ids=lambda r: f"{r.method} {r.id}")
def test_matrix_row(row: Row, db, settings, report):
    if row.name == "enrollment-demo-cardlist":
        from sponsorship.enrollment.demo import demo_cardlist_path

        path = demo_cardlist_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("STT\n", encoding="utf-8")
    world = build_world()
    expected = row.allowed()
    wrong, leaks = [], []
    for role in ROLES:
        audits_before = PersonalDataView.objects.count()
        response = send(client_for(world, role), row, world, role)
        got = outcome(response)
        if row.name == "healthz" and response.status_code == 503:
            got = "allow"  # by design: 503 names a dependency that is down (no Celery worker in tests)
        want = "allow" if expected[role] else "deny"
        if got != want:
            wrong.append(f"{role}: expected {want}, got {got} ({response.status_code})")
        text = body_text(response)
        if role in NO_PII_ROLES:
            leaks += [f"{role} saw {v!r}" for v in pii_values() if v in text]
        if role in NO_DONOR_A_ROLES:
            leaks += [f"{role} saw donor A's {v!r}" for v in donor_a_private() if v in text]
        if row.pii and expected[role]:
            audits = PersonalDataView.objects.count() - audits_before
            unmasked = world.member.personal_id in text
            if role in UNMASKED_ROLES:
                if not unmasked:
                    leaks.append(f"{role} (staff of commune X) did not get the unmasked personal ID")
                if audits != 1:
                    leaks.append(f"{role}: unmasked view wrote {audits} audit rows, expected 1")
            else:
                if unmasked:
                    leaks.append(f"{role} saw the unmasked personal ID")
                if audits != 0:
                    leaks.append(f"{role}: masked view wrote {audits} audit rows")
        report.add("access matrix", cells_checked=1, pii_bodies_checked=int(role in NO_PII_ROLES))
    assert not wrong, f"{row.method} {row.id}: " + "; ".join(wrong)
    assert not leaks, f"{row.method} {row.id}: " + "; ".join(leaks)
