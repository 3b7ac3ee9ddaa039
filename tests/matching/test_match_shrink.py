"""A refunded (fully or partly) or disputed individual gift shrinks the business's match in
proportion: the cap share comes back, the pledge is reversed in the ledger (Dr donor_funds /
Cr match_pledges), and the matched money's cards are un-matched by the same rules as any
refund. A dispute won gives the gift its money back, and the match grows back as far as the
cap still allows. Refunds and disputes go through the real appliers (and the Stripe emulator)."""

from decimal import Decimal

import pytest
from django.utils import timezone

from donors.models import DonorProfile
from sponsorship import stripe_client
from sponsorship.card_models import Card
from sponsorship.matching import offers, services
from sponsorship.matching.feature_models import MatchOffer, OfferMatch
from sponsorship.models import Donation, LedgerTransaction
from sponsorship.services import payments
from sponsorship.services.donations import donation_create
from sponsorship.services.ledger import check_invariants, natural_balance
from sponsorship.services.payments import apply_charge_refunded, apply_dispute, apply_refund
from tests.sponsorship.conftest import card_payment_method, emulator_base, stripe_emulator  # noqa: F401

from .conftest import PERIOD, communes, make_gift, make_household

SHARE = 379_080


@pytest.fixture
def business(make_user):
    user = make_user("donor", email="ketoan@hoamai.example.test")
    DonorProfile.objects.create(user=user, kind="business", company_name="Công ty Hoa Mai")
    return user


def make_offer(business, ratio="1", cap=5_000_000):
    return MatchOffer.objects.create(
        business=business,
        name="Hoa Mai",
        ratio=Decimal(ratio),
        cap_vnd=cap,
        starts_at=timezone.now().replace(year=2020),
    )


def matched_card_gift(donor, offer, amount, commune):
    """A paid card gift (ledger card_paid), matched by the offer. The gift is marked paid after
    its match, so a run spends the match money first (payment order)."""
    gift = make_gift(donor, amount, locality=commune)
    LedgerTransaction.objects.filter(donation=gift).update(kind="card_paid")
    Donation.objects.filter(pk=gift.pk).update(
        method="card", stripe_payment_intent_id=f"pi_test_{gift.pk}", stripe_charge_id=f"ch_{gift.pk}",
        paid_at=timezone.now(),
    )  # fmt: skip
    gift.refresh_from_db()
    assert offers.offers_apply(donation_ids=[gift.pk]) == 1
    Donation.objects.filter(pk=gift.pk).update(paid_at=timezone.now() + timezone.timedelta(hours=1))
    return gift, OfferMatch.objects.get(source=gift)


def refund(gift, amount, rid=None):
    apply_refund(
        {
            "id": rid or f"re_{gift.pk}_{amount}",
            "amount": amount,
            "status": "succeeded",
            "payment_intent": gift.stripe_payment_intent_id,
            "metadata": {"donation_id": str(gift.pk)},
        },
        source="test",
    )


def run(province):
    return services.match_province(province_id=province.pk, period_start=PERIOD)


def test_a_partial_refund_shrinks_the_match_and_unmatches_the_card_it_paid(ha_tinh, donor, business):
    commune = communes(ha_tinh)[0]
    hh = make_household(commune)
    offer = make_offer(business)
    gift, m = matched_card_gift(donor, offer, SHARE, commune)
    assert run(ha_tinh).cards_funded == 1
    card = Card.objects.get(household=hh)
    assert set(card.allocations.values_list("donation_id", flat=True)) == {m.matched_id}  # the match paid it
    refund(gift, 100_000)
    m.refresh_from_db()
    offer.refresh_from_db()
    assert m.returned_vnd == 100_000 and m.current_vnd == SHARE - 100_000
    assert offer.used_vnd == SHARE - 100_000  # the cap share came back
    assert natural_balance("match_pledges") == SHARE - 100_000  # the business owes less
    matched = Donation.objects.get(pk=m.matched_id)
    assert (matched.status, matched.amount_refunded_vnd) == ("partially_refunded", 100_000)
    card.refresh_from_db()
    assert card.status == "unmatched"  # its money shrank below the card's share
    assert check_invariants() == []
    # The money both gifts still have funds the member again.
    assert run(ha_tinh).cards_funded == 1
    assert check_invariants() == []


def test_the_same_refund_event_twice_gives_back_nothing_more(ha_tinh, donor, business):
    offer = make_offer(business, ratio="0.5")
    gift, m = matched_card_gift(donor, offer, 400_000, communes(ha_tinh)[0])
    assert m.amount_vnd == 200_000
    refund(gift, 100_000, rid="re_once")
    txs = LedgerTransaction.objects.count()
    refund(gift, 100_000, rid="re_once")
    assert LedgerTransaction.objects.count() == txs
    m.refresh_from_db()
    offer.refresh_from_db()
    assert m.returned_vnd == 50_000  # half of the 100,000 refunded, at ratio 0.5
    assert offer.used_vnd == 150_000 and natural_balance("match_pledges") == 150_000
    assert check_invariants() == []


def test_a_lost_dispute_takes_back_the_match(ha_tinh, donor, business):
    offer = make_offer(business)
    gift, m = matched_card_gift(donor, offer, SHARE, communes(ha_tinh)[0])
    dispute = {"id": f"dp_{gift.pk}", "amount": SHARE, "charge": gift.stripe_charge_id, "status": "needs_response",
               "metadata": {"donation_id": str(gift.pk)}}  # fmt: skip
    apply_dispute(dispute, event_type="charge.dispute.created")
    apply_dispute({**dispute, "status": "lost"}, event_type="charge.dispute.closed")
    apply_dispute({**dispute, "status": "lost"}, event_type="charge.dispute.closed")  # replayed
    m.refresh_from_db()
    offer.refresh_from_db()
    assert m.returned_vnd == SHARE and offer.used_vnd == 0
    assert natural_balance("match_pledges") == 0
    assert Donation.objects.get(pk=m.matched_id).status == "refunded"
    assert check_invariants() == []


def dispute_of(gift, dispute_id, amount=SHARE):
    dispute = {"id": dispute_id, "amount": amount, "charge": gift.stripe_charge_id, "status": "needs_response",
               "metadata": {"donation_id": str(gift.pk)}}  # fmt: skip
    apply_dispute(dispute, event_type="charge.dispute.created")
    return dispute


def won(dispute):
    apply_dispute({**dispute, "status": "won"}, event_type="charge.dispute.closed")


def test_a_won_dispute_grows_the_match_back_and_its_money_funds_cards_again(ha_tinh, donor, business):
    commune = communes(ha_tinh)[0]
    make_household(commune, size=2)
    offer = make_offer(business)
    gift, m = matched_card_gift(donor, offer, SHARE, commune)
    assert run(ha_tinh).cards_funded == 2  # the gift and its match pay a household of two
    dispute = dispute_of(gift, f"dp_{gift.pk}")
    m.refresh_from_db()
    assert m.returned_vnd == SHARE and natural_balance("match_pledges") == 0
    assert set(Card.objects.values_list("status", flat=True)) == {"unmatched"}

    won(dispute)
    txs = LedgerTransaction.objects.count()
    won(dispute)  # replayed: nothing more
    assert LedgerTransaction.objects.count() == txs
    m.refresh_from_db()
    offer.refresh_from_db()
    assert (m.returned_vnd, m.restored_vnd, m.current_vnd) == (0, SHARE, SHARE)
    assert offer.used_vnd == SHARE and natural_balance("match_pledges") == SHARE  # the business owes it again
    matched = Donation.objects.get(pk=m.matched_id)
    assert (matched.status, matched.amount_refunded_vnd) == ("succeeded", 0)
    assert LedgerTransaction.objects.filter(kind="match_restored", donation=matched).count() == 1
    assert check_invariants() == []
    # Both gifts' money funds the household again.
    assert run(ha_tinh).cards_funded == 2
    assert check_invariants() == []


def test_a_second_dispute_after_a_won_one_shrinks_the_match_again(ha_tinh, donor, business):
    offer = make_offer(business)
    gift, m = matched_card_gift(donor, offer, SHARE, communes(ha_tinh)[0])
    won(dispute_of(gift, "dp_first"))
    dispute_of(gift, "dp_second")
    m.refresh_from_db()
    offer.refresh_from_db()
    # Its own ledger step (the first shrink's key is not reused), so the books are exact.
    assert (m.returned_vnd, m.restored_vnd) == (SHARE, SHARE) and offer.used_vnd == 0
    assert natural_balance("match_pledges") == 0
    assert LedgerTransaction.objects.filter(kind="match_reduced").count() == 2
    assert Donation.objects.get(pk=m.matched_id).status == "refunded"
    assert check_invariants() == []


def test_a_match_grows_back_only_as_far_as_the_cap_left_allows(ha_tinh, donor, business, make_user):
    commune = communes(ha_tinh)[0]
    offer = make_offer(business, cap=SHARE + 100_000)
    gift, m = matched_card_gift(donor, offer, SHARE, commune)
    dispute = dispute_of(gift, f"dp_{gift.pk}")
    # Meanwhile another gift takes the cap share the dispute freed.
    other, m2 = matched_card_gift(make_user("donor"), offer, SHARE, commune)
    assert m2.amount_vnd == SHARE
    won(dispute)
    m.refresh_from_db()
    offer.refresh_from_db()
    assert offer.used_vnd == offer.cap_vnd
    assert (m.current_vnd, m.returned_vnd) == (100_000, SHARE - 100_000)
    matched = Donation.objects.get(pk=m.matched_id)
    assert (matched.status, matched.amount_refunded_vnd) == ("partially_refunded", SHARE - 100_000)
    assert natural_balance("match_pledges") == SHARE + 100_000
    assert check_invariants() == []


def test_a_refund_after_the_card_was_sent_flags_it(ha_tinh, donor, business):
    from sponsorship.services.cards import card_transition

    commune = communes(ha_tinh)[0]
    make_household(commune)
    offer = make_offer(business)
    gift, m = matched_card_gift(donor, offer, SHARE, commune)
    run(ha_tinh)
    card = Card.objects.get()
    card_transition(card_id=card.pk, to="listed")
    card_transition(card_id=card.pk, to="submitted")
    refund(gift, SHARE)
    card.refresh_from_db()
    assert card.status == "submitted" and card.is_flagged
    m.refresh_from_db()
    assert m.returned_vnd == SHARE and natural_balance("match_pledges") == 0
    # The fund is short by what was sent: the same alarm as any refund after sending.
    assert {name for name, _msg in check_invariants()} == {"nothing_negative"}


def test_a_full_refund_through_stripe_and_its_charge_refunded_event_twice(
    stripe_emulator,  # noqa: F811
    ha_tinh,
    donor,
    business,
    make_user,
):
    commune = communes(ha_tinh)[0]
    make_household(commune, size=2)
    offer = make_offer(business)
    gift, _ = donation_create(donor=donor, method="card", amount_vnd=SHARE, locality=commune)
    assert payments.card_pay(gift, card_payment_method(stripe_emulator, "4242424242424242"))["status"] == "succeeded"
    gift.refresh_from_db()
    assert offers.offers_apply(donation_ids=[gift.pk]) == 1
    assert run(ha_tinh).cards_funded == 2  # the gift and its match pay a household of two
    payments.refund_request(donation=gift, amount_vnd=None, by=make_user("finance"))
    m = OfferMatch.objects.get()
    offer.refresh_from_db()
    assert m.returned_vnd == SHARE and offer.used_vnd == 0 and natural_balance("match_pledges") == 0
    assert set(Card.objects.values_list("status", flat=True)) == {"unmatched"}
    assert check_invariants() == []
    # Stripe's charge.refunded arrives (twice): nothing more moves.
    pi = stripe_client.retrieve_payment_intent(gift.stripe_payment_intent_id)
    charge = (pi.get("charges") or {}).get("data")[0]
    txs = LedgerTransaction.objects.count()
    apply_charge_refunded(charge)
    apply_charge_refunded(charge)
    assert LedgerTransaction.objects.count() == txs
    assert check_invariants() == []
