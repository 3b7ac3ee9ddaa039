"""The sponsor page's server side, without a browser: the price comes from the pricing data, the
commune list hides small counts, a count of people becomes an amount, and the thank-you page's
status endpoint answers only the gift's donor."""

from datetime import date

import pytest

from beneficiaries.models import PremiumSchedule
from donors.models import Role
from sponsorship.models import Donation
from tests.matching.conftest import communes, make_household

pytestmark = pytest.mark.django_db


def test_communes_with_people_waiting_come_first_and_small_counts_are_hidden(client, ha_tinh, settings):
    settings.ENROLLMENT_PUBLIC_MIN_CELL = 3
    many, few = communes(ha_tinh, 2)
    make_household(many, size=4)
    make_household(few, size=1)
    rows = client.get(f"/donate/communes/{ha_tinh.pk}/").json()["communes"]
    assert rows == [
        {"id": many.pk, "name": many.name, "waiting": 4},
        {"id": few.pk, "name": few.name, "waiting": None},
    ]


def test_a_number_of_people_becomes_their_share_from_the_pricing_data(client, make_user, ha_tinh):
    donor = make_user(Role.DONOR)
    client.force_login(donor)
    page = client.get("/donate/").content.decode()
    # Double the base salary in force: the page and the gift follow the data, not a constant.
    schedule = PremiumSchedule.objects.filter(valid_from__lte=date.today()).order_by("-valid_from").first()
    PremiumSchedule.objects.filter(pk=schedule.pk).update(base_salary_vnd=schedule.base_salary_vnd * 2)
    page_after = client.get("/donate/").content.decode()
    assert page != page_after
    response = client.post(
        "/donate/",
        {
            "province": ha_tinh.pk,
            "product": "hi_household",
            "cards_count": 2,
            "method": "bank",
            "appearance": "named",
            "idempotency_key": "k-1",
        },
    )
    assert response.status_code == 302
    gift = Donation.objects.get(donor=donor)
    premium = round(schedule.base_salary_vnd * 2 * 0.045 * 12)
    assert gift.amount_vnd == 2 * (premium - round(premium * 0.7))
    assert gift.locality == ha_tinh and gift.product == "hi_household"


def test_a_commune_of_another_province_is_refused(client, make_user, ha_tinh, ha_noi):
    client.force_login(make_user(Role.DONOR))
    response = client.post(
        "/donate/",
        {
            "province": ha_tinh.pk,
            "commune": communes(ha_noi, 1)[0].pk,
            "product": "hi_household",
            "amount_vnd": 500_000,
            "method": "card",
            "appearance": "named",
            "idempotency_key": "k-2",
        },
    )
    assert response.status_code == 200 and not Donation.objects.exists()


def test_the_status_endpoint_answers_the_donor_in_their_language_and_nobody_else(client, make_user):
    from sponsorship.services.donations import donation_create

    donor, other = make_user(Role.DONOR), make_user(Role.DONOR)
    gift = donation_create(donor=donor, method="bank", amount_vnd=300_000)[0]
    client.force_login(donor)
    data = client.get(f"/donate/{gift.public_id}/status/", HTTP_ACCEPT_LANGUAGE="en").json()
    assert (data["status"], data["label"], data["paid"], data["final"]) == ("pending", "Pending", False, False)
    client.force_login(other)
    assert client.get(f"/donate/{gift.public_id}/status/").status_code == 404
