"""The sponsor page's "where most needed" consent and household picker, without a browser: the
consent is stored on the gift; the picker lists a commune's waiting households by size, class
and donor share only (never names, personal IDs, addresses or database ids); picking one holds
that household for the pledge (replacing the commune hold) and its money funds it first."""

import csv
import io

import pytest

from beneficiaries.models import Household
from donors.models import Role
from sponsorship.card_models import Card
from sponsorship.matching import services
from sponsorship.matching.feature_models import Hold
from sponsorship.models import Donation
from sponsorship.services import bank

from .conftest import PERIOD, communes, make_household


@pytest.fixture
def waiting(ha_tinh, settings):
    """Three waiting households in one commune (5 people), addresses on record."""
    settings.ENROLLMENT_PUBLIC_MIN_CELL = 3
    commune = communes(ha_tinh)[0]
    households = [make_household(commune, size=n) for n in (2, 2, 1)]
    Household.objects.filter(pk__in=[h.pk for h in households]).update(address="Thôn Bí Mật 7")
    return commune, households


def post_gift(client, ha_tinh, commune, **extra):
    data = {
        "province": ha_tinh.pk,
        "commune": commune.pk,
        "product": "hi_household",
        "cards_count": 1,
        "method": "bank",
        "appearance": "named",
        "idempotency_key": "k-1",
        **extra,
    }
    return client.post("/donate/", data, HTTP_ACCEPT_LANGUAGE="en")


def test_the_form_shows_the_consent_in_both_languages_and_stores_it(client, make_user, ha_tinh, settings):
    settings.CHUNGTAY_UNMATCHED_EXPIRY_DAYS = 45
    donor = make_user(Role.DONOR)
    client.force_login(donor)
    en = client.get("/donate/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    vi = client.get("/donate/", HTTP_ACCEPT_LANGUAGE="vi").content.decode()
    assert "If my money is not matched within 45 days, it may go where most needed." in en
    assert "45 ngày" in vi and "nơi cần nhất" in vi
    assert 'name="has_redirect_consent"' in en
    commune = communes(ha_tinh)[0]
    assert post_gift(client, ha_tinh, commune, has_redirect_consent="on").status_code == 302
    assert post_gift(client, ha_tinh, commune, idempotency_key="k-2").status_code == 302
    consent = dict(Donation.objects.values_list("idempotency_key", "has_redirect_consent"))
    assert consent == {"k-1": True, "k-2": False}


def test_the_picker_lists_waiting_households_without_personal_data(client, make_user, waiting):
    commune, households = waiting
    client.force_login(make_user(Role.DONOR))
    body = client.get(f"/donate/households/{commune.pk}/", HTTP_ACCEPT_LANGUAGE="en")
    rows = body.json()["households"]
    assert sorted(r["size"] for r in rows) == [1, 2, 2]
    assert {r["poverty_class"] for r in rows} == {"Near-poor household"}
    assert all(r["share_vnd"] > 0 and set(r) == {"token", "size", "poverty_class", "share_vnd", "share"} for r in rows)
    text = body.content.decode()
    for hh in households:
        for m in hh.members.all():
            assert m.full_name not in text and m.personal_id not in text
    assert "Bí Mật" not in text and "B\\u00ed M\\u1eadt" not in text
    # A commune with fewer waiting people than the public minimum shows no household.
    other = communes(commune.province, 2)[1]
    make_household(other, size=2)
    assert client.get(f"/donate/households/{other.pk}/").json()["households"] == []


def test_picking_a_household_holds_it_and_its_money_funds_it_first(client, make_user, ha_tinh, waiting):
    commune, households = waiting
    donor = make_user(Role.DONOR)
    client.force_login(donor)
    rows = client.get(f"/donate/households/{commune.pk}/").json()["households"]
    last = rows[-1]  # the household waiting least: without the hold, others come first
    r = post_gift(client, ha_tinh, commune, household=last["token"], cards_count=last["size"])
    assert r.status_code == 302, r.content.decode()[:500]
    gift = Donation.objects.get(donor=donor)
    assert gift.amount_vnd == last["share_vnd"] and gift.locality == commune
    hold = Hold.objects.get(donation=gift, status="active")
    held = hold.household
    assert held is not None and held.members.count() == last["size"]
    assert Hold.objects.filter(donation=gift, status="released", household=None).count() == 1  # the commune hold
    # The same form again (double click): the same gift and the same hold.
    post_gift(client, ha_tinh, commune, household=last["token"], cards_count=last["size"])
    assert Donation.objects.filter(donor=donor).count() == 1 and Hold.objects.filter(donation=gift).count() == 2
    # The transfer arrives; the run funds the held household with it.
    buf = io.StringIO()
    csv.writer(buf).writerows(
        [["date", "amount", "description"], ["05/01/2026", str(gift.amount_vnd), f"CK {gift.reference}"]]
    )
    bank.statement_import(name="s.csv", content=buf.getvalue().encode(), by=make_user(Role.FINANCE))
    bank.match_lines()
    services.match_province(province_id=ha_tinh.pk, period_start=PERIOD)
    funded = set(Card.objects.values_list("household_id", flat=True))
    assert funded == {held.pk}


def test_a_forged_or_foreign_household_is_refused(client, make_user, ha_tinh, waiting):
    commune, households = waiting
    client.force_login(make_user(Role.DONOR))
    r = post_gift(client, ha_tinh, commune, household="not-a-token")
    assert r.status_code == 200 and "Choose a household of the chosen commune." in r.content.decode()
    other = communes(ha_tinh, 2)[1]
    token = client.get(f"/donate/households/{commune.pk}/").json()["households"][0]["token"]
    r = post_gift(client, ha_tinh, other, household=token)
    assert r.status_code == 200 and not Donation.objects.exists()
    # Too little for the household's cards is refused, not silently held.
    r = post_gift(client, ha_tinh, commune, household=token, cards_count="", amount_vnd=10_000)
    assert r.status_code == 200 and not Donation.objects.exists()
