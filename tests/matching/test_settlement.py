"""Settling match pledges: the business pays what its offer owes by bank transfer (VietQR pledge,
found by the statement matching) or by card (Stripe emulator); the money ends in match_pledges
(Dr bank/stripe clearing, Cr match_pledges), partial and over-payments are explicit, replays
post nothing, and the ledger's invariants hold throughout."""

from decimal import Decimal

import pytest
from django.utils import timezone

from config.exceptions import ApplicationError
from donors.models import DonorProfile
from sponsorship.matching import offers, services, settlement
from sponsorship.matching.feature_models import MatchOffer, MatchSettlement
from sponsorship.models import BankStatementLine, Donation, LedgerTransaction
from sponsorship.services import bank, payments
from sponsorship.services.ledger import balance, check_invariants, natural_balance
from tests.bank_statements import csv_statement as statement
from tests.sponsorship.conftest import card_payment_method, emulator_base, stripe_emulator  # noqa: F401

from .conftest import PERIOD, communes, make_household
from .conftest import make_gift as _make_gift

SHARE = 379_080


@pytest.fixture
def business(make_user):
    user = make_user("donor", email="ketoan@congty.example.test")
    DonorProfile.objects.create(user=user, kind="business", company_name="Công ty Sen Vàng")
    return user


@pytest.fixture
def matched(ha_tinh, donor, business):
    """An offer that matched one commune gift 1:1: the business owes SHARE."""
    offer = MatchOffer.objects.create(
        business=business, name="Sen Vàng 1:1", ratio=Decimal("1"), cap_vnd=5_000_000,
        starts_at=timezone.now().replace(year=2020),
    )  # fmt: skip
    gift = _make_gift(donor, SHARE, locality=communes(ha_tinh)[0])
    Donation.objects.filter(pk=gift.pk).update(paid_at=timezone.now())
    assert offers.offers_apply(donation_ids=[gift.pk]) == 1
    assert natural_balance("match_pledges") == SHARE
    return offer


def owed(offer):
    return settlement.offers_owed([offer.pk])[offer.pk]


def gift_money_left(donation):
    """What the matcher could still spend from this gift (its own donor_funds credits)."""
    from sponsorship.matching.unmatch import gift_cleared_money

    return gift_cleared_money(donation.pk)


def test_the_business_sees_what_it_owes_and_settles_it_by_bank_transfer(client, matched, business, make_user):
    client.force_login(business)
    page = client.get("/matching/offers/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "You owe" in page and "379,080" in page
    r = client.post(
        f"/matching/offers/{matched.pk}/settle/", {"method": "bank", "amount_vnd": "", "idempotency_key": "k1"}
    )
    s = MatchSettlement.objects.get()
    assert r.status_code == 302 and r["Location"] == f"/donate/{s.donation.public_id}/pay/"
    # A double click returns the same settlement.
    client.post(f"/matching/offers/{matched.pk}/settle/", {"method": "bank", "idempotency_key": "k1"})
    assert MatchSettlement.objects.count() == 1
    pledge = s.donation
    assert (pledge.method, pledge.amount_vnd, pledge.donor, pledge.status) == ("bank", SHARE, business, "pending")
    pay = client.get(f"/donate/{pledge.public_id}/pay/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert pledge.reference in pay and "VietQR" in pay
    assert "This payment settles what your match offer owes: Sen Vàng 1:1" in pay

    finance = make_user("finance")
    content = statement([("05/01/2026", str(SHARE), f"CONG TY SEN VANG CK {pledge.reference}", "FT9", "")])
    bank.statement_import(name="vcb.csv", content=content, by=finance)
    assert bank.match_lines() == {"matched": 1, "unmatched": 0}
    pledge.refresh_from_db()
    assert pledge.status == "succeeded"
    assert natural_balance("match_pledges") == 0  # the business owes nothing now
    assert balance("bank_clearing") == 2 * SHARE  # the individual gift and the settlement
    assert gift_money_left(pledge) == 0  # nothing for the matcher to spend twice
    assert owed(matched) == {"pledged": SHARE, "settled": SHARE, "owed": 0}
    assert check_invariants() == []
    # The same statement again, and the hooks replayed: nothing more is posted.
    txs = LedgerTransaction.objects.count()
    again = bank.statement_import(name="vcb-again.csv", content=content, by=finance)
    assert again.lines_new == 0
    bank.match_lines()
    settlement.settlements_paid([pledge.pk])
    assert LedgerTransaction.objects.count() == txs
    # Finance sees the business with nothing outstanding.
    client.force_login(finance)
    fin = client.get("/finance/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "Công ty Sen Vàng" in fin and 'id="match-pledges"' in fin
    assert settlement.outstanding_by_business()[0]["owed"] == 0


def test_partial_then_over_payment_are_explicit_and_the_surplus_goes_where_most_needed(matched, business, make_user):
    s = settlement.settlement_create(offer=matched, by=business, method="bank")
    finance = make_user("finance")
    ref = s.donation.reference
    bank.statement_import(
        name="a.csv", content=statement([("05/01/2026", "100000", f"CK {ref}", "FT1", "")]), by=finance
    )
    bank.match_lines()
    s.donation.refresh_from_db()
    assert s.donation.status == "partially_paid"
    assert "partial payment" in BankStatementLine.objects.get(bank_reference="FT1").match_note
    assert owed(matched)["owed"] == SHARE - 100_000
    assert check_invariants() == []
    bank.statement_import(
        name="b.csv", content=statement([("06/01/2026", "400000", f"CK {ref} lan 2", "FT2", "")]), by=finance
    )
    bank.match_lines()
    s.donation.refresh_from_db()
    assert "over-payment" in BankStatementLine.objects.get(bank_reference="FT2").match_note
    surplus = 500_000 - SHARE
    assert owed(matched) == {"pledged": SHARE, "settled": SHARE, "owed": 0}
    assert natural_balance("match_pledges") == 0
    # Only what was owed was settled: the rest is the business's gift, where most needed.
    assert gift_money_left(s.donation) == surplus
    assert s.donation.fund_key.startswith("loc=*;prod=*;grp=*") and s.donation.has_redirect_consent
    assert check_invariants() == []


def test_the_last_of_a_pledge_below_the_smallest_gift_can_be_paid_by_bank_transfer(ha_tinh, donor, business, settings):
    """A 1:2 match of a 10,000 ₫ gift leaves 5,000 ₫ owed, under the 10,000 ₫ smallest gift."""
    settings.DONATION_MIN_VND = 10_000
    offer = MatchOffer.objects.create(
        business=business, name="Sen Vàng 1:2", ratio=Decimal("0.5"), cap_vnd=5_000_000,
        starts_at=timezone.now().replace(year=2020),
    )  # fmt: skip
    gift = _make_gift(donor, 10_000, locality=communes(ha_tinh)[0])
    Donation.objects.filter(pk=gift.pk).update(paid_at=timezone.now())
    assert offers.offers_apply(donation_ids=[gift.pk]) == 1
    assert owed(offer)["owed"] == 5_000
    # Part of it, or by card (Stripe's own minimum), is still held to the smallest gift.
    with pytest.raises(ApplicationError) as part:
        settlement.settlement_create(offer=offer, by=business, method="bank", amount_vnd=3_000)
    with pytest.raises(ApplicationError) as card:
        settlement.settlement_create(offer=offer, by=business, method="card")
    assert part.value.code == card.value.code == "amount_too_small"
    s = settlement.settlement_create(offer=offer, by=business, method="bank")
    assert s.donation.amount_vnd == 5_000


def test_two_settlements_paid_at_once_never_settle_more_than_owed(matched, business, make_user):
    first = settlement.settlement_create(offer=matched, by=business, method="bank", idempotency_key="a")
    second = settlement.settlement_create(offer=matched, by=business, method="bank", idempotency_key="b")
    rows = [
        ("05/01/2026", str(SHARE), f"CK {first.donation.reference}", "FT1", ""),
        ("05/01/2026", str(SHARE), f"CK {second.donation.reference}", "FT2", ""),
    ]
    bank.statement_import(name="a.csv", content=statement(rows), by=make_user("finance"))
    bank.match_lines()
    assert owed(matched) == {"pledged": SHARE, "settled": SHARE, "owed": 0}
    assert gift_money_left(first.donation) + gift_money_left(second.donation) == SHARE  # one is surplus
    assert check_invariants() == []


def test_finance_matching_a_line_by_hand_settles_too(matched, business, make_user):
    s = settlement.settlement_create(offer=matched, by=business, method="bank")
    finance = make_user("finance")
    bank.statement_import(
        name="a.csv", content=statement([("05/01/2026", str(SHARE), "chuyen tien", "FT1", "")]), by=finance
    )
    bank.match_lines()
    line = BankStatementLine.objects.get()
    assert line.status == "unmatched"
    bank.match_line_manually(line=line, reference=s.donation.reference, by=finance)
    assert owed(matched)["owed"] == 0 and natural_balance("match_pledges") == 0
    assert check_invariants() == []


def test_settling_is_guarded(matched, business, donor, make_user):
    with pytest.raises(ApplicationError):
        settlement.settlement_create(offer=matched, by=donor, method="bank")  # not the offer's business
    with pytest.raises(ApplicationError):
        settlement.settlement_create(offer=matched, by=business, method="bank", amount_vnd=SHARE + 1)
    with pytest.raises(ApplicationError):
        settlement.settlement_create(offer=matched, by=business, method="match")
    other = make_user("donor")
    DonorProfile.objects.create(user=other, kind="business", company_name="Khác")
    empty = MatchOffer.objects.create(business=other, name="x", cap_vnd=1_000_000, starts_at=timezone.now())
    with pytest.raises(ApplicationError):
        settlement.settlement_create(offer=empty, by=other, method="bank")  # owes nothing


def test_another_business_cannot_settle_the_offer_through_the_page(client, matched, make_user):
    other = make_user("donor")
    client.force_login(other)
    r = client.post(f"/matching/offers/{matched.pk}/settle/", {"method": "bank", "idempotency_key": "x"})
    assert r.status_code == 404
    assert not MatchSettlement.objects.exists()


def test_a_settlement_is_never_matched_by_another_offer(matched, business, make_user):
    # A second business's open offer without localities would match any individual gift.
    other = make_user("donor")
    MatchOffer.objects.create(business=other, name="y", cap_vnd=9_000_000, starts_at=timezone.now().replace(year=2020))
    s = settlement.settlement_create(offer=matched, by=business, method="bank")
    bank.statement_import(
        name="a.csv",
        content=statement([("05/01/2026", str(SHARE), f"CK {s.donation.reference}", "FT1", "")]),
        by=make_user("finance"),
    )
    bank.match_lines()
    offers.offers_apply()
    assert not s.donation.offer_matches.exists()


def test_the_business_settles_by_card_and_a_refund_makes_it_owe_again(
    stripe_emulator,  # noqa: F811
    ha_tinh,
    matched,
    business,
    make_user,
):
    s = settlement.settlement_create(offer=matched, by=business, method="card")
    result = payments.card_pay(s.donation, card_payment_method(stripe_emulator, "4242424242424242"))
    assert result["status"] == "succeeded"
    s.donation.refresh_from_db()
    assert s.donation.status == "succeeded"
    assert owed(matched)["owed"] == 0 and natural_balance("match_pledges") == 0
    assert balance("stripe_clearing") + balance("fees") == SHARE
    assert gift_money_left(s.donation) == 0
    assert check_invariants() == []
    # The matcher sees the individual gift and the match, never the settlement as money.
    make_household(communes(ha_tinh)[0], size=2)
    assert services.match_province(province_id=ha_tinh.pk, period_start=PERIOD).cards_funded == 2
    assert not s.donation.allocations.exists()
    # Finance refunds part of the settlement: that part is owed again.
    payments.refund_request(donation=s.donation, amount_vnd=100_000, by=make_user("finance"))
    assert owed(matched)["owed"] == 100_000
    assert natural_balance("match_pledges") == 100_000
    assert gift_money_left(s.donation) == 0
    assert check_invariants() == []


@pytest.mark.django_db(transaction=True)
def test_settlements_of_one_offer_paid_by_concurrent_workers_never_settle_more_than_owed(
    ha_tinh, donor, business, make_user
):
    """Four workers (separate connections) match four full-amount settlement lines of one offer at
    once: the offer's row lock lets exactly what it owed through; the rest is surplus."""
    import threading

    from django.db import connection

    offer = MatchOffer.objects.create(
        business=business, name="x", cap_vnd=5_000_000, starts_at=timezone.now().replace(year=2020)
    )
    gift = _make_gift(donor, SHARE, locality=communes(ha_tinh)[0])
    Donation.objects.filter(pk=gift.pk).update(paid_at=timezone.now())
    offers.offers_apply(donation_ids=[gift.pk])
    pledges = [
        settlement.settlement_create(offer=offer, by=business, method="bank", idempotency_key=f"c{i}") for i in range(4)
    ]
    finance = make_user("finance")
    rows = [("05/01/2026", str(SHARE), f"CK {s.donation.reference}", f"FT{i}", "") for i, s in enumerate(pledges)]
    bank.statement_import(name="c.csv", content=statement(rows), by=finance)
    lines = list(BankStatementLine.objects.order_by("id"))
    barrier = threading.Barrier(4)
    errors = []

    def worker(line, s):
        try:
            barrier.wait()
            bank.match_line_manually(line=line, reference=s.donation.reference, by=finance)
        except Exception as exc:  # noqa: BLE001 — reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=pair) for pair in zip(lines, pledges, strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert owed(offer) == {"pledged": SHARE, "settled": SHARE, "owed": 0}
    assert natural_balance("match_pledges") == 0
    assert sum(gift_money_left(s.donation) for s in pledges) == 3 * SHARE  # three were surplus
    assert check_invariants() == []
