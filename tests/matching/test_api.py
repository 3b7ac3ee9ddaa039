from rest_framework.test import APIClient

from donors.models import Role

from .conftest import PERIOD, communes, make_gift, make_household


def test_donor_sees_only_cards_their_money_funded_without_personal_data(ha_tinh, donor, make_user):
    from sponsorship.matching import services

    make_household(communes(ha_tinh)[0])
    make_gift(donor, 500_000)
    services.match_province(province_id=ha_tinh.pk, period_start=PERIOD)
    client = APIClient()
    client.force_authenticate(donor)
    rows = client.get("/api/matching/my-cards/").json()
    assert len(rows) == 1 and rows[0]["amount_vnd"] == 379_080
    assert set(rows[0]) == {"card_id", "commune", "group", "months", "period_start", "status", "amount_vnd"}
    other = make_user(Role.DONOR)
    client.force_authenticate(other)
    assert client.get("/api/matching/my-cards/").json() == []
    assert client.get("/api/matching/runs/").status_code in (403, 404)
    client.force_authenticate(make_user(Role.FINANCE))
    runs = client.get("/api/matching/runs/").json()
    assert runs[0]["cards_funded"] == 1
    explained = client.get(f"/api/matching/cards/{rows[0]['card_id']}/allocations/").json()
    assert explained[0]["rule_version"] == 1 and "months_uncovered" in explained[0]["components"]


def test_staff_pages_show_runs_and_a_cards_gifts(client, ha_tinh, donor, make_user):
    from sponsorship.card_models import Card
    from sponsorship.matching import services

    make_household(communes(ha_tinh)[0])
    gift = make_gift(donor, 500_000)
    services.match_province(province_id=ha_tinh.pk, period_start=PERIOD)
    client.force_login(donor)
    assert client.get("/matching/").status_code == 403
    client.force_login(make_user(Role.FINANCE))
    assert client.get("/matching/").status_code == 200
    page = client.get(f"/matching/cards/{Card.objects.get().pk}/").content.decode()
    assert gift.reference in page
