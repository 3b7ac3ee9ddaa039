"""End to end with the Stripe emulator: a card gift is paid, matched to a card, then refunded by
finance through Stripe; the card goes back to the queue and the books balance."""

from sponsorship.card_models import Card
from sponsorship.matching import services
from sponsorship.services import payments
from sponsorship.services.donations import donation_create
from sponsorship.services.ledger import check_invariants, fund_balances, natural_balance
from tests.sponsorship.conftest import card_payment_method, emulator_base, stripe_emulator  # noqa: F401

from .conftest import PERIOD, communes, make_household


def test_a_card_gift_refunded_through_stripe_unmatches_its_card(stripe_emulator, ha_tinh, donor, make_user):  # noqa: F811
    commune = communes(ha_tinh)[0]
    hh = make_household(commune)
    gift, _ = donation_create(donor=donor, method="card", amount_vnd=400_000, locality=commune)
    assert payments.card_pay(gift, card_payment_method(stripe_emulator, "4242424242424242"))["status"] == "succeeded"
    assert services.match_province(province_id=ha_tinh.pk, period_start=PERIOD).cards_funded == 1
    card = Card.objects.get(household=hh)
    refund = payments.refund_request(donation=gift, amount_vnd=None, by=make_user("finance"))
    assert refund.status == "succeeded"
    card.refresh_from_db()
    assert card.status == "unmatched"
    assert fund_balances("allocated_to_cards") == {gift.fund_key: 0}
    assert natural_balance("refunds") == 0 and natural_balance("donor_funds") == 0
    assert check_invariants() == []
