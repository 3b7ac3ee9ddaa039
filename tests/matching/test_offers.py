"""Corporate match offers: a business matches individual gifts at a ratio up to a cap, only in
its localities if it chose some; the matched money is a gift with the same restrictions; the
cap holds under concurrent workers (separate connections)."""

import threading
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone

from donors.models import DonorProfile
from sponsorship.card_models import Card
from sponsorship.matching import offers, services
from sponsorship.matching.feature_models import MatchOffer, OfferMatch
from sponsorship.services.ledger import check_invariants, natural_balance

from .conftest import PERIOD, communes, make_household
from .conftest import make_gift as _make_gift

SHARE = 379_080


def make_gift(donor, amount, **restriction):
    """A cleared gift, paid now (offers match gifts paid after they start)."""
    from sponsorship.models import Donation

    gift = _make_gift(donor, amount, **restriction)
    Donation.objects.filter(pk=gift.pk).update(paid_at=timezone.now())
    gift.refresh_from_db()
    return gift


@pytest.fixture
def business(make_user):
    user = make_user("donor", email="congty@example.test")
    DonorProfile.objects.create(user=user, kind="business", company_name="Công ty A")
    return user


def offer(business, *, ratio="1", cap=1_000_000, localities=()):
    o = MatchOffer.objects.create(
        business=business, name="Match", ratio=Decimal(ratio), cap_vnd=cap, starts_at=timezone.now().replace(year=2020)
    )
    o.localities.set(localities)
    return o


def test_a_gift_is_matched_once_with_the_same_restriction_and_funds_cards(ha_tinh, donor, business):
    commune = communes(ha_tinh)[0]
    make_household(commune, size=2)
    o = offer(business)
    gift = make_gift(donor, SHARE, locality=commune)
    assert offers.offers_apply(donation_ids=[gift.pk]) == 1
    assert offers.offers_apply(donation_ids=[gift.pk]) == 0  # once per gift
    m = OfferMatch.objects.get()
    assert (m.source, m.amount_vnd) == (gift, SHARE)
    assert m.matched.donor == business and m.matched.fund_key == gift.fund_key
    assert m.matched.locality == commune and m.matched.method == "match"
    assert natural_balance("match_pledges") == SHARE  # what the business owes
    o.refresh_from_db()
    assert o.used_vnd == SHARE
    # Gift + match pay the household of two.
    assert services.match_province(province_id=ha_tinh.pk, period_start=PERIOD).cards_funded == 2
    assert Card.objects.count() == 2
    assert check_invariants() == []


def test_ratio_cap_and_localities_are_obeyed(ha_tinh, ha_noi, donor, business, make_user):
    o = offer(business, ratio="0.5", cap=300_000, localities=[ha_tinh])
    inside = make_gift(donor, 400_000, locality=communes(ha_tinh)[0])
    outside = make_gift(donor, 400_000, locality=communes(ha_noi)[0])
    unrestricted = make_gift(donor, 400_000)
    own = make_gift(business, 400_000, locality=communes(ha_tinh)[0])  # the business's own gift
    second = make_gift(make_user("donor"), 400_000, locality=ha_tinh)
    offers.offers_apply()
    amounts = dict(OfferMatch.objects.values_list("source_id", "amount_vnd"))
    assert amounts == {inside.pk: 200_000, second.pk: 100_000}  # the second only gets what is left
    assert outside.pk not in amounts and unrestricted.pk not in amounts and own.pk not in amounts
    o.refresh_from_db()
    assert o.used_vnd == o.cap_vnd == 300_000


@pytest.mark.django_db(transaction=True)
def test_the_cap_is_never_exceeded_by_concurrent_workers(ha_tinh, business, make_user):
    o = offer(business, cap=1_000_000)
    gifts = [make_gift(make_user("donor"), 300_000) for _ in range(8)]
    barrier = threading.Barrier(4)
    errors = []

    def worker(chunk):
        try:
            barrier.wait()
            for g in chunk:
                offers.offer_match_gift(offer=MatchOffer.objects.get(pk=o.pk), gift=g)
            # every worker also tries every gift (duplicates must be harmless)
            for g in gifts:
                offers.offer_match_gift(offer=MatchOffer.objects.get(pk=o.pk), gift=g)
        except Exception as exc:  # noqa: BLE001 — reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(gifts[i::4],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    o.refresh_from_db()
    total = sum(OfferMatch.objects.values_list("amount_vnd", flat=True))
    assert o.used_vnd == total == 1_000_000
    assert OfferMatch.objects.count() == 4  # 3 × 300,000 + 100,000
    assert natural_balance("match_pledges") == 1_000_000
    assert check_invariants() == []


def test_the_business_sees_its_offers_use(client, ha_tinh, donor, business):
    offer(business)
    gift = make_gift(donor, SHARE, locality=communes(ha_tinh)[0])
    offers.offers_apply(donation_ids=[gift.pk])
    client.force_login(business)
    page = client.get("/matching/offers/").content.decode()
    assert "Match" in page and communes(ha_tinh)[0].name in page and donor.email not in page
    assert "/matching/offers/" in client.get("/donor/").content.decode()
