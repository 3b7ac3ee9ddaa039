from datetime import date

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from beneficiaries.identifiers import make_personal_id
from beneficiaries.models import ImportJob, Member, MemberStatus, PersonalDataView


def api(user):
    client = APIClient()
    client.force_authenticate(user)
    return client


def household_payload(commune, serial=1, **extra):
    dob = date(1988, 8, 8)
    return {
        "locality": commune.pk,
        "external_ref": f"API-{serial}",
        "address": "Xóm 2",
        "poverty_class": "near_poor",
        "members": [
            {
                "full_name": "Lý Thị Hạnh",
                "date_of_birth": dob.isoformat(),
                "sex": "female",
                "personal_id": make_personal_id(province_code=42, date_of_birth=dob, sex="female", serial=serial),
                "relation": "head",
            }
        ],
        **extra,
    }


@pytest.fixture
def created(officer, thanh_sen):
    response = api(officer).post("/api/registry/households/", household_payload(thanh_sen), format="json")
    assert response.status_code == 201, response.data
    return response.data


def test_officer_registers_a_household_through_the_api(created):
    assert Member.objects.get(pk=created["member_ids"][0]).status == MemberStatus.DRAFT


def test_invalid_personal_id_comes_back_with_the_field_and_reason(officer, thanh_sen):
    payload = household_payload(thanh_sen)
    payload["members"][0]["sex"] = "male"
    response = api(officer).post("/api/registry/households/", payload, format="json")
    assert response.status_code == 400
    assert "sex" in response.data["extra"]["fields"]["members[0]"]


def test_submit_then_approve_by_the_provinces_reviewer(officer, reviewer_ha_tinh, created):
    pk = created["member_ids"][0]
    assert api(officer).post(f"/api/registry/members/{pk}/submit/").data["status"] == "submitted"
    response = api(reviewer_ha_tinh).post(f"/api/registry/members/{pk}/approve/")
    assert response.status_code == 200 and response.data["status"] == "approved"
    history = api(reviewer_ha_tinh).get(f"/api/registry/members/{pk}/").data["history"]
    assert [h["to_status"] for h in history] == ["draft", "submitted", "approved"]


def test_reject_without_reason_is_a_400_and_a_wrong_transition_a_409(officer, reviewer_ha_tinh, created):
    pk = created["member_ids"][0]
    client = api(reviewer_ha_tinh)
    assert client.post(f"/api/registry/members/{pk}/reject/", {"reason": "x"}).status_code == 409  # still draft
    api(officer).post(f"/api/registry/members/{pk}/submit/")
    assert client.post(f"/api/registry/members/{pk}/reject/", {"reason": ""}).status_code == 400
    assert client.post(f"/api/registry/members/{pk}/reject/", {"reason": "Trùng"}).data["status"] == "rejected"


def test_reviewer_of_another_province_gets_404_and_sees_no_list(reviewer_ha_noi, created):
    client = api(reviewer_ha_noi)
    pk = created["member_ids"][0]
    assert client.get(f"/api/registry/members/{pk}/").status_code == 404
    assert client.post(f"/api/registry/members/{pk}/approve/").status_code == 404
    assert client.get(f"/api/registry/households/{created['id']}/").status_code == 404
    assert client.get("/api/registry/members/").data["count"] == 0


def test_detail_unmasks_and_logs_for_the_scope_but_lists_stay_masked(reviewer_ha_tinh, created):
    client = api(reviewer_ha_tinh)
    pk = created["member_ids"][0]
    member = Member.objects.get(pk=pk)
    listed = client.get("/api/registry/members/").data["results"][0]
    assert listed["personal_data_masked"] and listed["personal_id"] != member.personal_id
    assert not PersonalDataView.objects.exists()
    detail = client.get(f"/api/registry/members/{pk}/").data
    assert detail["personal_id"] == member.personal_id and detail["address"] == "Xóm 2"
    assert PersonalDataView.objects.filter(viewer=reviewer_ha_tinh, member_id=pk, channel="api").exists()


def test_household_api_prices_each_member(reviewer_ha_tinh, created):
    data = api(reviewer_ha_tinh).get(f"/api/registry/households/{created['id']}/").data
    price = data["members"][0]["price"]
    assert price["premium_vnd"] == price["state_share_vnd"] + price["donor_share_vnd"]
    assert price["donor_share_vnd"] in (379_080, 409_860)
    assert data["donor_total_12_months_vnd"] == price["donor_share_vnd"]


def test_member_price_for_voluntary_si(reviewer_ha_tinh, created):
    pk = created["member_ids"][0]
    response = api(reviewer_ha_tinh).get(
        f"/api/registry/members/{pk}/price/", {"product": "vsi", "months": 1, "on_date": "2025-09-01"}
    )
    assert response.data["premium_vnd"] == 330_000 and response.data["donor_share_vnd"] == 330_000 - 132_000


def test_bulk_approve_counts_approved_and_skipped(officer, reviewer_ha_tinh, reviewer_ha_noi, created):
    pk = created["member_ids"][0]
    api(officer).post(f"/api/registry/members/{pk}/submit/")
    assert api(reviewer_ha_noi).post("/api/registry/members/bulk-approve/", {"ids": [pk]}, format="json").data == {
        "approved": 0,
        "skipped": 1,
    }
    assert api(reviewer_ha_tinh).post("/api/registry/members/bulk-approve/", {"ids": [pk]}, format="json").data == {
        "approved": 1,
        "skipped": 0,
    }


def test_freeze_blocks_registration_until_unfrozen(officer, reviewer_ha_tinh, thanh_sen):
    assert api(reviewer_ha_tinh).post(f"/api/registry/localities/{thanh_sen.pk}/freeze/").data["frozen"]
    response = api(officer).post("/api/registry/households/", household_payload(thanh_sen, 5), format="json")
    assert response.status_code == 409
    assert api(officer).post(f"/api/registry/localities/{thanh_sen.pk}/unfreeze/").status_code == 404
    api(reviewer_ha_tinh).post(f"/api/registry/localities/{thanh_sen.pk}/unfreeze/")
    assert (
        api(officer).post("/api/registry/households/", household_payload(thanh_sen, 5), format="json").status_code
        == 201
    )


def test_import_api_accepts_a_file_and_reports_progress(officer, thanh_sen, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    upload = SimpleUploadedFile("ds.csv", "Họ và tên,Ngày sinh,Giới tính,Số CCCD,Mã xã\n".encode())
    response = api(officer).post("/api/registry/imports/", {"file": upload}, format="multipart")
    assert response.status_code == 202 and response.data["status"] == "pending"
    job = ImportJob.objects.get()
    assert api(officer).get(f"/api/registry/imports/{job.pk}/").data["rows_done"] == 0


def test_schema_lists_the_registry_endpoints(client):
    schema = client.get("/api/schema/").content.decode()
    assert "/api/registry/members/{id}/approve/" in schema
