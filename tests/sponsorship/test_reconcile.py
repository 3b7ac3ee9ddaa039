import pytest

from sponsorship import stripe_client
from sponsorship.models import Account, Discrepancy, DonationStatus, Method, ReconcileCursor, StripeEvent
from sponsorship.services import ledger, reconcile
from sponsorship.services.donations import donation_create

from .conftest import card_payment_method

pytestmark = pytest.mark.django_db


def pay_behind_our_back(base, donation, number="4242424242424242"):
    """Stripe charged, but our process died before applying the answer and the webhook
    never arrived (the emulator's webhook points nowhere in these tests)."""
    return stripe_client.create_and_confirm_payment_intent(
        amount_vnd=donation.amount_vnd,
        payment_method=card_payment_method(base, number),
        metadata={"donation_id": str(donation.pk)},
        idempotency_key=f"lost-{donation.pk}",
    )


def test_a_payment_whose_webhook_never_arrived_is_repaired_by_the_reconciler(stripe_emulator, donor_an):
    gift = donation_create(donor=donor_an, method=Method.CARD, amount_vnd=700_000)[0]
    pay_behind_our_back(stripe_emulator, gift)
    assert ledger.natural_balance(Account.DONOR_FUNDS) == 0
    reconcile.reconcile_stripe()
    gift.refresh_from_db()
    assert gift.status == DonationStatus.SUCCEEDED
    assert ledger.natural_balance(Account.DONOR_FUNDS) == 700_000
    assert StripeEvent.objects.filter(type="payment_intent.succeeded", source="reconcile").count() == 1


def test_running_the_reconciler_twice_changes_nothing_the_second_time(stripe_emulator, donor_an):
    gift = donation_create(donor=donor_an, method=Method.CARD, amount_vnd=700_000)[0]
    pay_behind_our_back(stripe_emulator, gift)
    reconcile.reconcile_stripe()
    entries = ledger.trial_balance()
    events = StripeEvent.objects.count()
    reconcile.reconcile_stripe()
    assert ledger.trial_balance() == entries
    assert StripeEvent.objects.count() == events


def test_the_payment_intent_pass_repairs_and_reports_when_events_are_gone(stripe_emulator, donor_an):
    gift = donation_create(donor=donor_an, method=Method.CARD, amount_vnd=300_000)[0]
    pi = pay_behind_our_back(stripe_emulator, gift)
    out = reconcile.reconcile_payment_intents(batch=2, max_pages=10)
    assert out["repaired"] == 1
    assert Discrepancy.objects.filter(kind="missed_webhook", stripe_object_id=pi["id"]).exists()
    assert ReconcileCursor.objects.get(name="payment_intents").starting_after == pi["id"]


def test_a_payment_nobody_here_asked_for_is_reported(stripe_emulator, donor_an):
    stripe_client.create_and_confirm_payment_intent(
        amount_vnd=50_000,
        payment_method=card_payment_method(stripe_emulator, "4242424242424242"),
        metadata={"note": "made in the dashboard"},
        idempotency_key="stray",
    )
    reconcile.reconcile_stripe()
    assert Discrepancy.objects.filter(kind="unknown_payment").count() == 1
    assert ledger.natural_balance(Account.DONOR_FUNDS) == 0


def test_the_reconciler_pages_in_bounded_batches_and_resumes_from_its_cursor(stripe_emulator, donor_an):
    gifts = [donation_create(donor=donor_an, method=Method.CARD, amount_vnd=100_000 + i)[0] for i in range(5)]
    for g in gifts:
        pay_behind_our_back(stripe_emulator, g)
    # A run that can only read one page of two stops with its cursor saved...
    reconcile.reconcile_payment_intents(batch=2, max_pages=1)
    assert ledger.natural_balance(Account.DONOR_FUNDS) == 100_000 + 100_001
    # ...and the next run carries on from there.
    reconcile.reconcile_payment_intents(batch=2, max_pages=10)
    assert ledger.natural_balance(Account.DONOR_FUNDS) == sum(100_000 + i for i in range(5))


def test_seeded_payment_intents_page_in_order_and_are_repaired(stripe_emulator, donor_an):
    """The emulator's seeding hook (benchmarks) makes real confirmed PaymentIntents, and its
    by-type listing pages them completely, oldest first, across page boundaries."""
    from config.stripe_emulator import seed_payment_intents

    gifts = [donation_create(donor=donor_an, method=Method.CARD, amount_vnd=200_000 + i)[0] for i in range(5)]
    ids = seed_payment_intents(
        stripe_emulator,
        [{"amount": g.amount_vnd, "currency": "vnd", "metadata": {"donation_id": str(g.pk)}} for g in gifts],
    )
    assert [p["id"] for p in stripe_client.iter_all_payment_intents()] == ids
    out = reconcile.reconcile_payment_intents(batch=2, max_pages=10)
    assert out == {"checked": 5, "repaired": 5}
    assert ledger.natural_balance(Account.DONOR_FUNDS) == sum(g.amount_vnd for g in gifts)
