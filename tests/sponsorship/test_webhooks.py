"""The webhook endpoint and the inbox, with signed fixture payloads for what the emulator
never sends (charge.refunded, disputes, fees)."""

import random
import time

import pytest

from sponsorship.models import Account, Discrepancy, Donation, DonationStatus, Method, StripeEvent
from sponsorship.services import ledger, stripe_events
from sponsorship.services.donations import donation_create

from .conftest import WEBHOOK_SECRET, signed_event

pytestmark = pytest.mark.django_db
URL = "/stripe/webhook/"


@pytest.fixture(autouse=True)
def webhook_secret(settings):
    settings.STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET


def gift(donor, amount=1_000_000) -> Donation:
    return donation_create(donor=donor, method=Method.CARD, amount_vnd=amount)[0]


def pi_event(donation, *, evt_id, status="succeeded", amount=None, fee=0, currency="vnd", etype=None):
    pi_id = f"pi_fixture_{donation.pk}"
    obj = {
        "id": pi_id,
        "object": "payment_intent",
        "amount": amount or donation.amount_vnd,
        "currency": currency,
        "status": status,
        "metadata": {"donation_id": str(donation.pk)},
        "latest_charge": {
            "id": f"ch_fixture_{donation.pk}",
            "balance_transaction": {"id": f"txn_{donation.pk}", "fee": fee},
        },
        "last_payment_error": {"message": "Your card was declined."} if status == "requires_payment_method" else None,
    }
    etype = etype or ("payment_intent.succeeded" if status == "succeeded" else "payment_intent.payment_failed")
    return {"id": evt_id, "object": "event", "type": etype, "created": int(time.time()), "data": {"object": obj}}


def charge_refunded_event(donation, *, evt_id, amount_refunded):
    return {
        "id": evt_id,
        "object": "event",
        "type": "charge.refunded",
        "created": int(time.time()),
        "data": {
            "object": {
                "id": f"ch_fixture_{donation.pk}",
                "object": "charge",
                "payment_intent": f"pi_fixture_{donation.pk}",
                "amount": donation.amount_vnd,
                "amount_refunded": amount_refunded,
                "metadata": {"donation_id": str(donation.pk)},
            }
        },
    }


def dispute_event(donation, *, evt_id, etype, status, amount=None):
    return {
        "id": evt_id,
        "object": "event",
        "type": etype,
        "created": int(time.time()),
        "data": {
            "object": {
                "id": f"dp_fixture_{donation.pk}",
                "object": "dispute",
                "amount": amount or donation.amount_vnd,
                "charge": f"ch_fixture_{donation.pk}",
                "payment_intent": f"pi_fixture_{donation.pk}",
                "status": status,
            }
        },
    }


def post(client, event, secret=WEBHOOK_SECRET):
    body, sig = signed_event(event, secret)
    return client.post(URL, data=body, content_type="application/json", HTTP_STRIPE_SIGNATURE=sig)


def test_a_webhook_without_signature_is_refused_before_the_database(client, django_assert_num_queries, donor_an):
    event = pi_event(gift(donor_an), evt_id="evt_nosig")
    with django_assert_num_queries(0):
        response = client.post(URL, data=signed_event(event)[0], content_type="application/json")
    assert response.status_code == 400
    assert StripeEvent.objects.count() == 0


def test_a_webhook_signed_with_another_secret_is_refused(client, donor_an):
    response = post(client, pi_event(gift(donor_an), evt_id="evt_badsig"), secret="whsec_wrong")
    assert response.status_code == 400
    assert StripeEvent.objects.count() == 0


def test_a_tampered_body_is_refused(client, donor_an):
    body, sig = signed_event(pi_event(gift(donor_an), evt_id="evt_tamper"))
    response = client.post(
        URL, data=body.replace(b"1000000", b"9000000"), content_type="application/json", HTTP_STRIPE_SIGNATURE=sig
    )
    assert response.status_code == 400


def test_a_signed_event_is_stored_raw_once_and_answered_200(client, donor_an):
    event = pi_event(gift(donor_an), evt_id="evt_store")
    assert post(client, event).status_code == 200
    assert post(client, event).status_code == 200
    row = StripeEvent.objects.get()
    assert row.payload == event
    assert row.status == "pending"


def test_the_same_success_delivered_ten_times_moves_money_once(client, donor_an):
    donation = gift(donor_an)
    event = pi_event(donation, evt_id="evt_dup", fee=23_000)
    for _ in range(10):
        assert post(client, event).status_code == 200
    # Ten more copies under different event ids (Stripe may resend as a new event).
    for i in range(10):
        post(client, {**event, "id": f"evt_dup_{i}"})
    stripe_events.drain_inbox()
    stripe_events.drain_inbox()
    donation.refresh_from_db()
    assert donation.status == DonationStatus.SUCCEEDED
    assert ledger.natural_balance(Account.DONOR_FUNDS) == 1_000_000
    assert ledger.balance(Account.FEES) == 23_000
    assert ledger.balance(Account.STRIPE_CLEARING) == 977_000
    assert StripeEvent.objects.filter(status="processed").count() == 11


def test_a_late_failure_after_success_changes_nothing(client, donor_an):
    donation = gift(donor_an)
    post(client, pi_event(donation, evt_id="evt_ok"))
    post(client, pi_event(donation, evt_id="evt_fail", status="requires_payment_method"))
    stripe_events.drain_inbox()
    donation.refresh_from_db()
    assert donation.status == DonationStatus.SUCCEEDED
    assert ledger.natural_balance(Account.DONOR_FUNDS) == 1_000_000


def test_charge_refunded_from_stripe_reverses_the_ledger_exactly_and_replays_are_harmless(client, donor_an):
    donation = gift(donor_an)
    post(client, pi_event(donation, evt_id="evt_paid"))
    post(client, charge_refunded_event(donation, evt_id="evt_ref1", amount_refunded=400_000))
    post(client, charge_refunded_event(donation, evt_id="evt_ref2", amount_refunded=1_000_000))
    post(client, charge_refunded_event(donation, evt_id="evt_ref1_again", amount_refunded=400_000))
    stripe_events.drain_inbox()
    donation.refresh_from_db()
    assert donation.status == DonationStatus.REFUNDED
    assert donation.amount_refunded_vnd == 1_000_000
    assert ledger.natural_balance(Account.DONOR_FUNDS) == 0
    assert ledger.balance(Account.STRIPE_CLEARING) == 0
    assert ledger.check_invariants() == []


def test_a_lost_dispute_takes_the_money_and_a_won_one_gives_it_back(client, donor_an):
    donation = gift(donor_an)
    post(client, pi_event(donation, evt_id="evt_paid"))
    post(client, dispute_event(donation, evt_id="evt_dp1", etype="charge.dispute.created", status="needs_response"))
    stripe_events.drain_inbox()
    donation.refresh_from_db()
    assert donation.status == DonationStatus.DISPUTED
    assert ledger.natural_balance(Account.DONOR_FUNDS) == 0
    post(client, dispute_event(donation, evt_id="evt_dp2", etype="charge.dispute.closed", status="won"))
    stripe_events.drain_inbox()
    donation.refresh_from_db()
    assert donation.status == DonationStatus.SUCCEEDED
    assert ledger.natural_balance(Account.DONOR_FUNDS) == 1_000_000
    assert ledger.check_invariants() == []


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_events_in_any_order_and_repeated_leave_the_same_exact_ledger(client, donor_an, seed):
    donation = gift(donor_an)
    events = [
        pi_event(donation, evt_id="evt_a"),
        pi_event(donation, evt_id="evt_b", status="requires_payment_method"),
        charge_refunded_event(donation, evt_id="evt_c", amount_refunded=250_000),
        dispute_event(
            donation, evt_id="evt_d", etype="charge.dispute.created", status="needs_response", amount=750_000
        ),
        dispute_event(donation, evt_id="evt_e", etype="charge.dispute.closed", status="lost", amount=750_000),
    ]
    rng = random.Random(seed)
    deliveries = events * 3
    rng.shuffle(deliveries)
    for event in deliveries:
        post(client, event)
        if rng.random() < 0.3:
            stripe_events.drain_inbox()
    stripe_events.drain_inbox(include_failed=True)  # what the beat safety net does
    donation.refresh_from_db()
    assert list(StripeEvent.objects.filter(status="failed").values_list("type", "error")) == []
    assert ledger.natural_balance(Account.DONOR_FUNDS) == 0
    assert ledger.balance(Account.STRIPE_CLEARING) == 0
    assert donation.amount_received_vnd == 1_000_000
    assert donation.status == DonationStatus.DISPUTED
    assert ledger.check_invariants() == []


def test_an_amount_mismatch_is_reported_to_finance(client, donor_an):
    donation = gift(donor_an)
    post(client, pi_event(donation, evt_id="evt_mismatch", amount=999_000))
    stripe_events.drain_inbox()
    assert Discrepancy.objects.filter(kind="amount_or_currency_mismatch").exists()
    assert ledger.natural_balance(Account.DONOR_FUNDS) == 999_000


def test_a_failing_event_keeps_its_error_and_is_replayed_by_the_command(client, donor_an, monkeypatch):
    from django.core.management import call_command

    donation = gift(donor_an)
    post(client, pi_event(donation, evt_id="evt_paid_first"))
    stripe_events.drain_inbox()
    post(client, charge_refunded_event(donation, evt_id="evt_boom", amount_refunded=100_000))

    def boom(*args, **kwargs):
        raise RuntimeError("database was read-only")

    monkeypatch.setattr("sponsorship.services.payments.apply_charge_refunded", boom)
    stripe_events.drain_inbox()
    row = StripeEvent.objects.get(stripe_event_id="evt_boom")
    assert row.status == "failed"
    assert "read-only" in row.error
    monkeypatch.undo()
    call_command("replay_stripe_events")
    row.refresh_from_db()
    assert row.status == "processed"
    assert row.error == ""
    assert ledger.natural_balance(Account.DONOR_FUNDS) == 900_000


def test_the_bulk_path_and_the_single_path_post_the_same_payment_once(client, donor_an):
    donation = gift(donor_an)
    event = pi_event(donation, evt_id="evt_bulk", fee=11_000)
    stripe_events.store_event(event)
    assert stripe_events.process_succeeded_batch() == 1
    from sponsorship.services import payments

    payments.apply_payment_intent(event["data"]["object"])  # e.g. the synchronous API answer
    donation.refresh_from_db()
    assert donation.status == DonationStatus.SUCCEEDED
    assert donation.fee_vnd == 11_000
    assert donation.history.filter(to_status=DonationStatus.SUCCEEDED).count() == 1
    assert ledger.natural_balance(Account.DONOR_FUNDS) == 1_000_000
    assert ledger.balance(Account.FEES) == 11_000
    assert ledger.check_invariants() == []


def test_the_celery_task_applies_a_stored_event_and_is_safe_to_run_twice(client, donor_an):
    from sponsorship import tasks

    donation = gift(donor_an)
    post(client, pi_event(donation, evt_id="evt_task"))
    row = StripeEvent.objects.get(stripe_event_id="evt_task")
    tasks.process_stripe_event.apply(args=[row.pk])
    tasks.process_stripe_event.apply(args=[row.pk])
    row.refresh_from_db()
    assert row.status == "processed"
    assert row.attempts == 1
    assert ledger.natural_balance(Account.DONOR_FUNDS) == 1_000_000


def test_the_beat_drain_retries_failed_events_once_their_payment_is_known(client, donor_an):
    from sponsorship import tasks

    donation = gift(donor_an)
    post(
        client,
        dispute_event(donation, evt_id="evt_early_dispute", etype="charge.dispute.created", status="needs_response"),
    )
    stripe_events.drain_inbox()
    assert StripeEvent.objects.get(stripe_event_id="evt_early_dispute").status == "failed"
    post(client, pi_event(donation, evt_id="evt_late_payment"))
    tasks.drain_stripe_inbox.apply()
    assert StripeEvent.objects.get(stripe_event_id="evt_early_dispute").status == "processed"
    donation.refresh_from_db()
    assert donation.status == DonationStatus.DISPUTED
