"""Holds: a donor who picks a commune or a household keeps that need while their money clears;
others' money cannot take it; the holder's money funds it; beat releases expired holds."""

from datetime import timedelta

import pytest
from django.utils import timezone

from sponsorship.card_models import Card
from sponsorship.matching import holds, services
from sponsorship.matching.feature_models import Hold, HoldStatus
from sponsorship.models import Account, Donation
from sponsorship.services.donations import donation_create
from sponsorship.services.ledger import check_invariants, credit, debit, ledger_post

from .conftest import PERIOD, communes, make_gift, make_household

SHARE = 379_080


def run(province):
    return services.match_province(province_id=province.pk, period_start=PERIOD)


def clear(gift: Donation, amount: int) -> None:
    ledger_post(
        key=f"bank_paid:test-hold:{gift.pk}",
        kind="bank_paid",
        donation=gift,
        entries=[debit(Account.BANK_CLEARING, amount), credit(Account.DONOR_FUNDS, amount, gift.fund_key)],
    )
    Donation.objects.filter(pk=gift.pk).update(status="succeeded", amount_received_vnd=amount, paid_at=timezone.now())


def test_a_pledge_to_a_commune_holds_it_for_days_by_bank_and_minutes_by_card(ha_tinh, donor, settings):
    commune = communes(ha_tinh)[0]
    bank, _ = donation_create(donor=donor, method="bank", amount_vnd=SHARE, locality=commune)
    card, _ = donation_create(donor=donor, method="card", amount_vnd=SHARE, locality=commune)
    unrestricted, _ = donation_create(donor=donor, method="bank", amount_vnd=SHARE)
    hb, hc = Hold.objects.get(donation=bank), Hold.objects.get(donation=card)
    assert hb.locality == commune and hb.province == ha_tinh and hb.status == HoldStatus.ACTIVE
    days = (hb.expires_at - hb.created_at).total_seconds() / 86400
    minutes = (hc.expires_at - hc.created_at).total_seconds() / 60
    assert round(days) == settings.CHUNGTAY_HOLD_BANK_DAYS and round(minutes) == settings.CHUNGTAY_HOLD_CARD_MINUTES
    assert not Hold.objects.filter(donation=unrestricted).exists()
    assert holds.hold_create(donation=bank, locality=commune) == hb  # one active hold per pledge


def test_others_money_cannot_take_a_held_household_but_the_holders_money_funds_it(ha_tinh, donor, make_user):
    commune = communes(ha_tinh)[0]
    held = make_household(commune, valid_until=PERIOD.replace(year=2025))  # highest priority
    other = make_household(commune)
    pledge, _ = donation_create(donor=donor, method="bank", amount_vnd=SHARE, locality=commune)
    Hold.objects.filter(donation=pledge).delete()
    hold = holds.hold_create(donation=pledge, household=held, by=donor)
    make_gift(make_user("donor"), SHARE)  # someone else's unrestricted money, cleared now
    run(ha_tinh)
    # Without the hold it would have funded `held` (highest score); it funds `other`.
    assert Card.objects.get().household == other
    clear(pledge, SHARE)
    run(ha_tinh)
    card = Card.objects.get(household=held)
    assert card.allocations.get().donation == pledge
    hold.refresh_from_db()
    assert hold.status == HoldStatus.CONSUMED
    assert check_invariants() == []


def test_only_the_pledges_donor_may_hold_for_it(ha_tinh, donor, make_user):
    from django.http import Http404

    hh = make_household(communes(ha_tinh)[0])
    pledge, _ = donation_create(donor=donor, method="card", amount_vnd=SHARE)
    with pytest.raises(Http404):
        holds.hold_create(donation=pledge, household=hh, by=make_user("donor"))


def test_an_expired_hold_is_released_and_the_need_is_funded_by_others(ha_tinh, donor, make_user):
    commune = communes(ha_tinh)[0]
    hh = make_household(commune)
    pledge, _ = donation_create(donor=donor, method="card", amount_vnd=SHARE, locality=commune)
    make_gift(make_user("donor"), SHARE)
    assert run(ha_tinh).cards_funded == 0  # held by the card pledge for a few minutes
    Hold.objects.filter(donation=pledge).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert holds.release_expired() == 1
    assert holds.release_expired() == 0  # idempotent
    assert Hold.objects.get(donation=pledge).status == HoldStatus.EXPIRED
    assert run(ha_tinh).cards_funded == 1
    assert Card.objects.get().household == hh


def test_a_failed_pledge_releases_its_hold(ha_tinh, donor):
    commune = communes(ha_tinh)[0]
    make_household(commune)
    pledge, _ = donation_create(donor=donor, method="card", amount_vnd=SHARE, locality=commune)
    Donation.objects.filter(pk=pledge.pk).update(status="failed")
    assert holds.release_expired() == 1
    assert Hold.objects.get(donation=pledge).status == HoldStatus.RELEASED


def test_a_donor_holds_a_household_through_the_api_and_others_cannot(client, ha_tinh, donor, make_user):
    hh = make_household(communes(ha_tinh)[0])
    pledge, _ = donation_create(donor=donor, method="bank", amount_vnd=SHARE)
    client.force_login(make_user("donor"))
    body = {"donation": str(pledge.public_id), "household_id": hh.pk}
    assert client.post("/api/matching/holds/", body, content_type="application/json").status_code == 404
    client.force_login(donor)
    answer = client.post("/api/matching/holds/", body, content_type="application/json")
    assert answer.status_code == 201 and answer.json()["household_id"] == hh.pk
    assert answer.json()["status"] == "active"
