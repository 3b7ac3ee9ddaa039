"""Regressions for the server errors schemathesis found (each was a 500 before its fix)."""

from __future__ import annotations

import pytest
from django.test import Client

from .world import build_world

HUGE = "99999999999999999999"  # beyond PostgreSQL's bigint


@pytest.fixture
def admin_client(db):
    world = build_world()
    client = Client(raise_request_exception=False)
    client.force_login(world.users["admin"])
    return client


@pytest.mark.parametrize(
    "url",
    [
        f"/matching/cards/{HUGE}/",
        f"/api/matching/cards/{HUGE}/allocations/",
        f"/registry/households/{HUGE}/",
        f"/api/registry/households/{HUGE}/",
        f"/enrollment/batches/{HUGE}/export.csv",
    ],
)
def test_a_path_id_beyond_bigint_is_404(admin_client, url):
    assert admin_client.get(url).status_code == 404


@pytest.mark.parametrize("query", [f"offset={HUGE}", f"locality={HUGE}", f"province={HUGE}"])
def test_member_list_filters_beyond_bigint_are_400(admin_client, query):
    response = admin_client.get(f"/api/registry/members/?{query}")
    assert response.status_code == 400, response.content


def test_basic_auth_with_a_nul_byte_is_refused_not_500(db):
    import base64

    header = "Basic " + base64.b64encode(b"an\x00@x.vn:pw").decode()
    response = Client(raise_request_exception=False).get("/api/accounts/me/", HTTP_AUTHORIZATION=header)
    assert response.status_code in (401, 403)  # refused as bad credentials
