from datetime import date

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone

from beneficiaries.models import ImportJob, Member, MemberStatus, PersonalDataView, PovertyClass
from beneficiaries.services.registry import household_create
from beneficiaries.services.review import member_submit
from donors.models import Role, User

from .conftest import member_input


@pytest.fixture
def member(officer, thanh_sen):
    hh = household_create(
        user=officer,
        locality=thanh_sen,
        external_ref="HT-7",
        address="Số 5 ngõ 12",
        poverty_class=PovertyClass.NEAR_POOR,
        members=[member_input("Võ Thị Thu", date(1985, 6, 1), "female")],
    )
    return member_submit(user=officer, member=hh.members.get())


@pytest.fixture
def finance(db):
    return User.objects.create_user("finance@test.vn", "pw", role=Role.FINANCE)


def test_reviewer_of_the_commune_sees_personal_data_and_the_view_is_logged(client, reviewer_ha_tinh, member):
    client.force_login(reviewer_ha_tinh)
    page = client.get(reverse("registry-member", args=[member.pk])).content.decode()
    assert member.personal_id in page and "Số 5 ngõ 12" in page
    assert PersonalDataView.objects.filter(viewer=reviewer_ha_tinh, member=member, channel="page").count() == 1


def test_member_page_shows_the_donors_share_of_a_12_month_card(client, reviewer_ha_tinh, member):
    client.force_login(reviewer_ha_tinh)
    response = client.get(reverse("registry-member", args=[member.pk]), HTTP_ACCEPT_LANGUAGE="en")
    # 30% of 4.5% × base salary × 12: 379,080 at 2,340,000; 409,860 from 2026-07-01.
    expected = 409_860 if timezone.localdate() >= date(2026, 7, 1) else 379_080
    assert response.context["price"].donor_share_vnd == expected
    assert len(response.context["history"]) == 2


def test_reviewer_of_another_province_gets_404_on_the_member_and_household(client, reviewer_ha_noi, member):
    client.force_login(reviewer_ha_noi)
    assert client.get(reverse("registry-member", args=[member.pk])).status_code == 404
    assert client.get(reverse("registry-household", args=[member.household_id])).status_code == 404
    assert member.full_name not in client.get(reverse("registry-queue")).content.decode()
    assert not PersonalDataView.objects.exists()


def test_nationwide_finance_staff_see_masked_personal_data(client, finance, member):
    client.force_login(finance)
    page = client.get(reverse("registry-household", args=[member.household_id])).content.decode()
    assert member.full_name in page
    assert member.personal_id not in page and "Số 5 ngõ 12" not in page
    assert not PersonalDataView.objects.exists()


def test_donors_cannot_open_staff_pages(client, donor, member):
    client.force_login(donor)
    assert client.get(reverse("registry-queue")).status_code == 403


def test_reviewer_approves_from_the_queue_and_rejects_with_a_reason(client, reviewer_ha_tinh, member):
    client.force_login(reviewer_ha_tinh)
    queue = reverse("registry-queue") + "?status=submitted"
    assert member.full_name in client.get(queue).content.decode()
    client.post(queue, {"member": [member.pk]})
    member.refresh_from_db()
    assert member.status == MemberStatus.APPROVED
    client.post(reverse("registry-member-action", args=[member.pk, "suspend"]), {"reason": ""})
    member.refresh_from_db()
    assert member.status == MemberStatus.APPROVED  # a reason is required
    client.post(reverse("registry-member-action", args=[member.pk, "suspend"]), {"reason": "Đã mất"})
    member.refresh_from_db()
    assert member.status == MemberStatus.SUSPENDED


def test_import_upload_creates_a_job_and_its_page_shows_progress(client, officer, thanh_sen, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    client.force_login(officer)
    upload = SimpleUploadedFile("ds.csv", "Họ và tên,Ngày sinh\n".encode())
    response = client.post(reverse("registry-imports"), {"file": upload})
    job = ImportJob.objects.get()
    assert response.url == reverse("registry-import", args=[job.pk])
    page = client.get(response.url, HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "0 of 0 rows" in page


def test_the_vietnamese_queue_page_renders(client, reviewer_ha_tinh, member):
    client.force_login(reviewer_ha_tinh)
    client.cookies["django_language"] = "vi"
    assert client.get(reverse("registry-queue")).status_code == 200


def test_pages_speak_vietnamese_and_english(client, reviewer_ha_tinh, member):
    client.force_login(reviewer_ha_tinh)
    client.cookies["django_language"] = "vi"
    assert "Danh sách chờ thẩm định" in client.get(reverse("registry-queue")).content.decode()
    client.cookies["django_language"] = "en"
    assert "Review queue" in client.get(reverse("registry-queue")).content.decode()


def test_officer_registers_a_household_with_the_staff_form(client, officer, thanh_sen):
    client.force_login(officer)
    assert client.get(reverse("registry-household-new")).status_code == 200
    pid = member_input("Mai Văn Tâm", date(1970, 2, 2)).personal_id
    data = {
        "locality": thanh_sen.pk,
        "external_ref": "FORM-1",
        "poverty_class": "near_poor",
        "m0-full_name": "Mai Văn Tâm",
        "m0-date_of_birth": "02/02/1970",
        "m0-sex": "male",
        "m0-personal_id": pid,
        "m0-relation": "head",
    }
    response = client.post(reverse("registry-household-new"), data)
    assert response.status_code == 302
    assert Member.objects.get(personal_id=pid).household.external_ref == "FORM-1"


def test_staff_form_shows_the_id_mismatch_and_saves_nothing(client, officer, thanh_sen):
    client.force_login(officer)
    data = {
        "locality": thanh_sen.pk,
        "external_ref": "FORM-2",
        "poverty_class": "none",
        "m0-full_name": "Mai Thị Lan",
        "m0-date_of_birth": "02/02/1970",
        "m0-sex": "female",
        "m0-personal_id": "042070123456",  # digit 0 = a man
        "m0-relation": "head",
    }
    response = client.post(reverse("registry-household-new"), data, HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 200 and not Member.objects.exists()
    assert "sex" in response.content.decode()
