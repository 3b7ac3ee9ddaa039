"""Card gifts against the real localstripe emulator."""

import time

import pytest

from sponsorship.models import Account, Donation, DonationStatus, Method, StripeEvent
from sponsorship.services import ledger, payments, stripe_events
from sponsorship.services.donations import donation_create

from .conftest import authenticate_3ds, card_payment_method

pytestmark = pytest.mark.django_db


def card_gift(donor, amount=500_000, **kw):
    return donation_create(donor=donor, method=Method.CARD, amount_vnd=amount, **kw)[0]


def test_a_4242_card_pays_the_gift_and_credits_donor_funds_once(stripe_emulator, donor_an):
    gift = card_gift(donor_an)
    payments.card_setup_start(gift)
    result = payments.card_pay(gift, card_payment_method(stripe_emulator, "4242424242424242"))
    gift.refresh_from_db()
    assert result["status"] == DonationStatus.SUCCEEDED
    assert gift.status == DonationStatus.SUCCEEDED
    assert gift.stripe_payment_intent_id.startswith("pi_")
    assert gift.amount_received_vnd == 500_000
    assert ledger.natural_balance(Account.DONOR_FUNDS, gift.fund_key) == 500_000
    assert ledger.balance(Account.STRIPE_CLEARING) == 500_000
    assert ledger.check_invariants() == []


def test_a_declined_card_fails_the_gift_with_the_banks_message(stripe_emulator, donor_an):
    gift = card_gift(donor_an)
    result = payments.card_pay(gift, card_payment_method(stripe_emulator, "4000000000000341"))
    gift.refresh_from_db()
    assert result["status"] == DonationStatus.FAILED
    assert "declined" in result["message"]
    assert gift.status == DonationStatus.FAILED
    assert ledger.trial_balance()[Account.DONOR_FUNDS] == 0


def test_a_declined_gift_can_be_paid_with_another_card(stripe_emulator, donor_an):
    gift = card_gift(donor_an)
    payments.card_pay(gift, card_payment_method(stripe_emulator, "4000000000000341"))
    result = payments.card_pay(gift, card_payment_method(stripe_emulator, "4242424242424242"))
    assert result["status"] == DonationStatus.SUCCEEDED
    assert gift.history.filter(to_status=DonationStatus.FAILED).exists()


@pytest.mark.parametrize("success, final", [(True, DonationStatus.SUCCEEDED), (False, DonationStatus.REQUIRES_ACTION)])
def test_three_d_secure_completes_or_fails_through_the_same_guarded_service(stripe_emulator, donor_an, success, final):
    gift = card_gift(donor_an)
    result = payments.card_pay(gift, card_payment_method(stripe_emulator, "4000002500003155"))
    assert result["status"] == DonationStatus.REQUIRES_ACTION
    assert result["client_secret"]
    authenticate_3ds(stripe_emulator, result["payment_intent"], result["client_secret"], success)
    # What the payment_intent.* webhook would bring: the PaymentIntent as Stripe has it now.
    from sponsorship import stripe_client

    pi = stripe_client.retrieve_payment_intent(result["payment_intent"])
    payments.apply_payment_intent(pi)
    if not success:
        payments.apply_payment_failed(pi)
        final = DonationStatus.FAILED
    gift.refresh_from_db()
    assert gift.status == final
    assert ledger.natural_balance(Account.DONOR_FUNDS) == (500_000 if success else 0)


def test_paying_an_already_paid_gift_is_refused(stripe_emulator, donor_an):
    from config.exceptions import ConflictError

    gift = card_gift(donor_an)
    payments.card_pay(gift, card_payment_method(stripe_emulator, "4242424242424242"))
    gift.refresh_from_db()
    with pytest.raises(ConflictError):
        payments.card_pay(gift, card_payment_method(stripe_emulator, "4242424242424242"))
    assert ledger.natural_balance(Account.DONOR_FUNDS) == 500_000


def test_finance_refunds_partly_then_fully_and_the_ledger_reverses_exactly(stripe_emulator, donor_an, finance_giang):
    gift = card_gift(donor_an, 900_000)
    payments.card_pay(gift, card_payment_method(stripe_emulator, "4242424242424242"))
    gift.refresh_from_db()
    first = payments.refund_request(donation=gift, amount_vnd=300_000, by=finance_giang)
    gift.refresh_from_db()
    assert first.stripe_refund_id.startswith("re_")
    assert gift.status == DonationStatus.PARTIALLY_REFUNDED
    assert ledger.natural_balance(Account.DONOR_FUNDS) == 600_000
    payments.refund_request(donation=gift, amount_vnd=None, by=finance_giang)
    gift.refresh_from_db()
    assert gift.status == DonationStatus.REFUNDED
    assert gift.amount_refunded_vnd == 900_000
    assert ledger.natural_balance(Account.DONOR_FUNDS) == 0
    assert ledger.balance(Account.STRIPE_CLEARING) == 0
    assert ledger.balance(Account.REFUNDS) == 0
    assert ledger.check_invariants() == []


def test_refunding_more_than_was_received_is_refused(stripe_emulator, donor_an, finance_giang):
    from config.exceptions import ConflictError

    gift = card_gift(donor_an, 200_000)
    payments.card_pay(gift, card_payment_method(stripe_emulator, "4242424242424242"))
    gift.refresh_from_db()
    with pytest.raises(ConflictError):
        payments.refund_request(donation=gift, amount_vnd=200_001, by=finance_giang)
    assert gift.refunds.count() == 0


def test_a_donor_cannot_refund(stripe_emulator, donor_an):
    from config.exceptions import ApplicationError

    gift = card_gift(donor_an, 200_000)
    payments.card_pay(gift, card_payment_method(stripe_emulator, "4242424242424242"))
    gift.refresh_from_db()
    with pytest.raises(ApplicationError, match="finance"):
        payments.refund_request(donation=gift, amount_vnd=None, by=donor_an)


def _wait_for_events(gift: Donation, n: int = 1, timeout: float = 8.0) -> list[StripeEvent]:
    """Events about this gift (deliveries for earlier tests' objects may still trickle in)."""

    def mine():
        return list(
            StripeEvent.objects.filter(payload__data__object__metadata__donation_id=str(gift.pk)).order_by("id")
        )

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(events := mine()) >= n:
            return events
        time.sleep(0.2)
    return mine()


@pytest.mark.django_db(transaction=True)
def test_the_emulators_signed_webhook_reaches_the_live_server_and_moves_money_once(
    live_server, webhooks_to, stripe_emulator, donor_an
):
    webhooks_to(f"{live_server.url}/stripe/webhook/")
    gift = card_gift(donor_an, 400_000)
    payments.card_pay(gift, card_payment_method(stripe_emulator, "4242424242424242"))
    events = _wait_for_events(gift)
    assert [e.type for e in events] == ["payment_intent.succeeded"]
    assert events[0].payload["data"]["object"]["metadata"]["donation_id"] == str(gift.pk)
    stripe_events.drain_inbox()
    events[0].refresh_from_db()
    assert events[0].status == "processed"
    assert ledger.natural_balance(Account.DONOR_FUNDS) == 400_000


@pytest.mark.django_db(transaction=True)
def test_a_decline_webhook_marks_the_gift_failed(live_server, webhooks_to, stripe_emulator, donor_an):
    webhooks_to(f"{live_server.url}/stripe/webhook/")
    gift = card_gift(donor_an, 400_000)
    Donation.objects.filter(pk=gift.pk).update(status=DonationStatus.PENDING)
    payments.card_pay(gift, card_payment_method(stripe_emulator, "4000000000000341"))
    events = _wait_for_events(gift)
    assert [e.type for e in events] == ["payment_intent.payment_failed"]
    stripe_events.drain_inbox()
    gift.refresh_from_db()
    assert gift.status == DonationStatus.FAILED
