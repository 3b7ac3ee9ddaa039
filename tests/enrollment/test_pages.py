from datetime import date

import pytest
from django.urls import reverse

from donors.models import Role
from sponsorship.enrollment import batches, rollups, targets
from sponsorship.enrollment.models import Target
from sponsorship.services.cards import card_transition

pytestmark = pytest.mark.django_db


def _enrol(card, code):
    for to in ("listed", "submitted"):
        card_transition(card_id=card.pk, to=to)
    return card_transition(
        card_id=card.pk, to="enrolled", card_code=code, valid_from=date(2022, 11, 1), valid_to=date(2023, 10, 31)
    )


@pytest.fixture
def enrolled(hn_commune, ht_commune, make_card):
    targets.seed_targets(2022)
    cards = [_enrol(make_card(hn_commune), "HN0112345678"), _enrol(make_card(ht_commune), "HN4212345678")]
    rollups.rollups_recompute()
    return cards


def test_agency_viewer_of_ha_noi_sees_ha_noi_only_in_page_api_and_export(
    client, make_user, ha_noi, ha_tinh, hn_commune, ht_commune, enrolled
):
    client.force_login(make_user(Role.AGENCY_VIEWER, ha_noi))
    page = client.get(reverse("enrollment-dashboard"), {"year": 2022, "type": "hi"}).content.decode()
    assert ha_noi.name in page and ha_tinh.name not in page
    communes = client.get(reverse("enrollment-dashboard"), {"year": 2022, "province": ha_tinh.pk}).content.decode()
    assert ht_commune.name not in communes
    api = client.get(reverse("api-enrollment-dashboard"), {"year": 2022, "province": ha_noi.pk}).json()
    assert [r["name"] for r in api["rows"]] == [hn_commune.name] and api["rows"][0]["new"] == 1
    export = client.get(reverse("enrollment-dashboard"), {"year": 2022, "format": "csv"}).content.decode("utf-8-sig")
    assert export.splitlines()[0].startswith("Địa bàn") and ha_tinh.name not in export


def test_donors_cannot_open_the_dashboard_and_the_public_page_has_no_personal_data(
    client, make_user, enrolled, settings
):
    client.force_login(make_user(Role.DONOR))
    assert client.get(reverse("enrollment-dashboard")).status_code == 403
    assert client.get(reverse("api-enrollment-dashboard")).status_code == 403
    client.logout()
    settings.ENROLLMENT_PUBLIC_MIN_CELL = 5
    page = client.get(reverse("enrollment-campaign"), {"year": 2022}).content.decode()
    card = enrolled[0]
    assert card.member.full_name not in page and card.member.personal_id not in page
    assert "8050000" in page.replace(".", "").replace(",", "")  # Hà Nội's target is public


def test_gift_trace_shows_validity_and_masked_code_to_its_donor_only(client, donor_lan, make_user, gift, enrolled):
    client.force_login(donor_lan)
    page = client.get(reverse("enrollment-gift-trace", args=[gift.public_id])).content.decode()
    card = enrolled[0]
    assert "HN0112345678" not in page and "HN•••••••678" in page
    assert card.member.full_name not in page and card.member.personal_id not in page
    assert card.household.address not in page
    client.force_login(make_user(Role.DONOR))
    assert client.get(reverse("enrollment-gift-trace", args=[gift.public_id])).status_code == 404


def test_staff_batch_flow_and_ha_noi_officer_cannot_touch_ha_tinh(client, make_user, hn_commune, ht_commune, make_card):
    make_card(hn_commune)
    make_card(ht_commune)
    officer = make_user(Role.COMMUNE_OFFICER, hn_commune)
    client.force_login(officer)
    response = client.post(reverse("enrollment-batches"), {"commune": ht_commune.pk, "product": "hi_household"})
    assert response.status_code == 200  # the form comes back: Hà Tĩnh is not among the choices
    client.post(reverse("enrollment-batches"), {"commune": hn_commune.pk, "product": "hi_household"})
    from sponsorship.enrollment.models import AgencyBatch

    assert not AgencyBatch.objects.filter(locality=ht_commune).exists()
    batch = AgencyBatch.objects.get(locality=hn_commune)
    xlsx = client.get(reverse("enrollment-batch-export", args=[batch.pk, "xlsx"]))
    assert xlsx.status_code == 200 and xlsx.content[:2] == b"PK"
    other = batches.batch_create(locality=ht_commune, product="hi_household", period=date(2022, 11, 1))
    assert client.get(reverse("enrollment-batch-export", args=[other.pk, "csv"])).status_code == 404
    assert client.post(reverse("enrollment-batch-action", args=[batch.pk, "paid"])).status_code == 403


def test_the_dashboard_opens_on_the_latest_year_with_targets(client, make_user, ha_noi, enrolled):
    client.force_login(make_user(Role.AGENCY_VIEWER, ha_noi))
    page = client.get(reverse("enrollment-dashboard"))
    assert page.context["year"] == 2022  # the seeded targets' year, not an empty current year
    Target.objects.create(locality=ha_noi, year=2024, type="hi", number=10)
    assert client.get(reverse("enrollment-dashboard")).context["year"] == 2024
    Target.objects.create(locality=ha_noi, year=date.today().year + 1, type="hi", number=10)  # next year's plan
    assert client.get(reverse("enrollment-dashboard")).context["year"] == 2024
