import pytest
from rest_framework.test import APIClient

from sponsorship.models import Donation

from .conftest import card_payment_method

pytestmark = pytest.mark.django_db


def api_as(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_a_double_click_with_the_same_idempotency_key_makes_one_donation(donor_an):
    client = api_as(donor_an)
    body = {"method": "card", "amount_vnd": 500_000, "appearance": "named"}
    first = client.post("/api/donations/create/", body, format="json", HTTP_IDEMPOTENCY_KEY="click-1")
    second = client.post("/api/donations/create/", body, format="json", HTTP_IDEMPOTENCY_KEY="click-1")
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.data["public_id"] == second.data["public_id"]
    assert Donation.objects.count() == 1


def test_two_donors_may_use_the_same_idempotency_key(donor_an, donor_binh):
    body = {"method": "card", "amount_vnd": 500_000}
    api_as(donor_an).post("/api/donations/create/", body, format="json", HTTP_IDEMPOTENCY_KEY="k")
    api_as(donor_binh).post("/api/donations/create/", body, format="json", HTTP_IDEMPOTENCY_KEY="k")
    assert Donation.objects.count() == 2


def test_a_gift_below_the_minimum_is_refused_with_a_clear_message(donor_an, settings):
    settings.DONATION_MIN_VND = 10_000
    response = api_as(donor_an).post("/api/donations/create/", {"method": "card", "amount_vnd": 9_999}, format="json")
    assert response.status_code == 400
    assert response.data["code"] == "amount_too_small"
    assert "10.000" in response.data["message"]


def test_a_gift_above_the_maximum_is_refused_with_a_clear_message(donor_an, settings):
    settings.DONATION_MAX_VND = 1_000_000
    response = api_as(donor_an).post(
        "/api/donations/create/", {"method": "card", "amount_vnd": 1_000_001}, format="json"
    )
    assert response.status_code == 400
    assert response.data["code"] == "amount_too_large"


def test_a_number_of_cards_is_priced_per_card(donor_an, settings):
    settings.DONATION_CARD_PRICE_VND = 379_080
    response = api_as(donor_an).post(
        "/api/donations/create/", {"method": "bank", "cards_count": 3, "product": "hi_household"}, format="json"
    )
    assert response.status_code == 201
    assert response.data["amount_vnd"] == 3 * 379_080
    assert response.data["vietqr_payload"].startswith("000201")
    assert response.data["vietqr_image"].startswith("data:image/svg+xml;base64,")


def test_only_a_business_donor_can_appear_as_a_company(donor_an, business_donor):
    body = {"method": "card", "amount_vnd": 500_000, "appearance": "company"}
    assert api_as(donor_an).post("/api/donations/create/", body, format="json").status_code == 400
    assert api_as(business_donor).post("/api/donations/create/", body, format="json").status_code == 201


def test_donor_a_cannot_see_or_pay_donor_bs_gift(donor_an, donor_binh):
    created = api_as(donor_binh).post(
        "/api/donations/create/", {"method": "card", "amount_vnd": 500_000}, format="json"
    )
    public_id = created.data["public_id"]
    an = api_as(donor_an)
    assert an.get(f"/api/donations/{public_id}/").status_code == 404
    assert an.post(f"/api/donations/{public_id}/card-setup/").status_code == 404
    assert an.get("/api/donations/").data == []
    assert len(api_as(donor_binh).get("/api/donations/").data) == 1


def test_a_donor_cannot_reach_the_finance_ledger(donor_an, finance_giang):
    assert api_as(donor_an).get("/api/finance/ledger/").status_code == 403
    assert api_as(finance_giang).get("/api/finance/ledger/").status_code == 200


def test_the_card_flow_through_the_api_pays_the_gift(stripe_emulator, donor_an):
    client = api_as(donor_an)
    created = client.post("/api/donations/create/", {"method": "card", "amount_vnd": 250_000}, format="json")
    public_id = created.data["public_id"]
    setup = client.post(f"/api/donations/{public_id}/card-setup/")
    assert setup.status_code == 200
    assert setup.data["client_secret"].startswith("seti_")
    paid = client.post(
        f"/api/donations/{public_id}/card-pay/",
        {"payment_method": card_payment_method(stripe_emulator, "4242424242424242")},
        format="json",
    )
    assert paid.data["status"] == "succeeded"
    assert client.get(f"/api/donations/{public_id}/").data["status"] == "succeeded"


def test_finance_refunds_through_the_api(stripe_emulator, donor_an, finance_giang):
    client = api_as(donor_an)
    public_id = client.post("/api/donations/create/", {"method": "card", "amount_vnd": 250_000}, format="json").data[
        "public_id"
    ]
    client.post(
        f"/api/donations/{public_id}/card-pay/",
        {"payment_method": card_payment_method(stripe_emulator, "4242424242424242")},
        format="json",
    )
    assert client.post(f"/api/donations/{public_id}/refunds/", {}, format="json").status_code == 403
    response = api_as(finance_giang).post(f"/api/donations/{public_id}/refunds/", {"amount_vnd": 50_000}, format="json")
    assert response.status_code == 201
    assert Donation.objects.get(public_id=public_id).amount_refunded_vnd == 50_000


def test_the_api_schema_lists_the_donation_endpoints(client):
    response = client.get("/api/schema/")
    assert response.status_code == 200
    body = response.content.decode()
    for path in ("/api/donations/create/", "/api/donations/{public_id}/card-pay/", "/api/finance/statements/"):
        assert path in body
