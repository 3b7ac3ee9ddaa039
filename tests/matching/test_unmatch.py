"""A refund or dispute of money already allocated un-matches cards not yet sent (allocations
released, ledger allocated → donor funds → refund, card back to the queue) and flags sent ones.
Refunds and disputes go through the real appliers of sponsorship/services/payments.py."""

from beneficiaries.models import MemberStatus
from beneficiaries.services.review import member_suspend
from sponsorship.card_models import Card
from sponsorship.matching import services
from sponsorship.matching.models import Allocation
from sponsorship.models import Donation, LedgerTransaction
from sponsorship.services.cards import card_transition
from sponsorship.services.ledger import check_invariants, fund_balances
from sponsorship.services.payments import apply_dispute, apply_refund

from .conftest import PERIOD, communes, make_gift, make_household

SHARE = 379_080


def run(province):
    return services.match_province(province_id=province.pk, period_start=PERIOD)


def card_gift(donor, amount):
    """A paid card gift as payments.apply_payment_intent leaves it (ledger card_paid)."""
    gift = make_gift(donor, amount)
    LedgerTransaction.objects.filter(donation=gift).update(kind="card_paid")
    Donation.objects.filter(pk=gift.pk).update(method="card", stripe_payment_intent_id=f"pi_test_{gift.pk}")
    gift.refresh_from_db()
    return gift


def refund(gift, amount):
    """A succeeded Stripe refund, applied by the real applier (as from the API answer or webhook)."""
    apply_refund(
        {
            "id": f"re_{gift.pk}_{amount}",
            "amount": amount,
            "status": "succeeded",
            "payment_intent": gift.stripe_payment_intent_id,
            "metadata": {"donation_id": str(gift.pk)},
        },
        source="test",
    )


def test_full_refund_unmatches_a_funded_card_and_the_books_stay_right(ha_tinh, donor):
    hh = make_household(communes(ha_tinh)[0])
    gift = card_gift(donor, 500_000)
    run(ha_tinh)
    card = Card.objects.get(household=hh)
    refund(gift, 500_000)
    card.refresh_from_db()
    assert card.status == "unmatched"
    assert card.transitions.last().to_status == "unmatched"
    assert not Allocation.objects.filter(donation=gift).exists()
    assert fund_balances("allocated_to_cards") == {gift.fund_key: 0}
    assert fund_balances("donor_funds")[gift.fund_key] == 0
    assert check_invariants() == []
    # The member is back in the queue: new money funds a new card for them.
    make_gift(donor, 400_000)
    assert run(ha_tinh).cards_funded == 1
    assert Card.objects.filter(household=hh, status="funded").count() == 1


def test_partial_refund_covered_by_pooled_money_unmatches_nothing(ha_tinh, donor):
    make_household(communes(ha_tinh)[0])
    gift = card_gift(donor, 500_000)
    run(ha_tinh)
    refund(gift, 500_000 - SHARE)  # exactly what was left in the pool
    assert Card.objects.get().status == "funded"
    assert check_invariants() == []


def test_unmatching_returns_the_other_gifts_money_to_their_pool(ha_tinh, donor):
    make_household(communes(ha_tinh)[0])
    a = card_gift(donor, 200_000)
    b = make_gift(donor, SHARE - 200_000)
    run(ha_tinh)
    assert Allocation.objects.count() == 2
    refund(a, 200_000)
    assert Card.objects.get().status == "unmatched"
    assert not Allocation.objects.filter(donation=b).exists()  # b's money is free again
    assert check_invariants() == []


def test_a_listed_card_leaves_its_batch(ha_tinh, donor):
    from sponsorship.enrollment.batches import batch_create
    from sponsorship.enrollment.models import AgencyBatchCard

    commune = communes(ha_tinh)[0]
    make_household(commune)
    gift = card_gift(donor, SHARE)
    run(ha_tinh)
    batch = batch_create(locality=commune, product="hi_household", period=PERIOD)
    refund(gift, SHARE)
    assert Card.objects.get().status == "unmatched"
    assert not AgencyBatchCard.objects.filter(batch=batch, is_live=True).exists()


def test_money_refunded_after_the_card_was_sent_flags_it(ha_tinh, donor):
    make_household(communes(ha_tinh)[0])
    gift = card_gift(donor, SHARE)
    run(ha_tinh)
    card = Card.objects.get()
    card_transition(card_id=card.pk, to="listed")
    card_transition(card_id=card.pk, to="submitted")
    refund(gift, SHARE)
    card.refresh_from_db()
    assert card.status == "submitted" and card.is_flagged and gift.reference in card.flag_reason


def test_a_lost_dispute_unmatches_and_a_won_one_brings_the_money_back(ha_tinh, donor):
    make_household(communes(ha_tinh)[0])
    gift = card_gift(donor, SHARE)
    Donation.objects.filter(pk=gift.pk).update(stripe_charge_id=f"ch_{gift.pk}")
    run(ha_tinh)
    dispute = {"id": f"dp_{gift.pk}", "amount": SHARE, "charge": f"ch_{gift.pk}", "status": "needs_response",
               "metadata": {"donation_id": str(gift.pk)}}  # fmt: skip
    apply_dispute(dispute, event_type="charge.dispute.created")
    assert Card.objects.get().status == "unmatched"
    assert check_invariants() == []
    apply_dispute({**dispute, "status": "won"}, event_type="charge.dispute.closed")
    assert run(ha_tinh).cards_funded == 1  # the money is back and funds the member again
    assert check_invariants() == []


def test_a_suspended_member_loses_a_card_not_yet_sent(ha_tinh, donor, make_user):
    hh = make_household(communes(ha_tinh)[0])
    gift = make_gift(donor, SHARE)
    run(ha_tinh)
    member = hh.members.get()
    member_suspend(user=make_user("front_reviewer", ha_tinh), member=member, reason="moved away")
    assert Card.objects.get().status == "unmatched"
    assert fund_balances("donor_funds")[gift.fund_key] == SHARE
    member.refresh_from_db()
    assert member.status == MemberStatus.SUSPENDED
    assert run(ha_tinh).cards_funded == 0  # not approved: never staged again
    assert check_invariants() == []


def test_finance_sees_flagged_cards_and_donors_do_not(client, ha_tinh, donor, make_user):
    make_household(communes(ha_tinh)[0])
    gift = card_gift(donor, SHARE)
    run(ha_tinh)
    card = Card.objects.get()
    for to in ("listed", "submitted"):
        card_transition(card_id=card.pk, to=to)
    refund(gift, SHARE)
    client.force_login(make_user("finance"))
    page = client.get("/matching/flagged/").content.decode()
    assert f'href="/matching/cards/{card.pk}/"' in page and gift.reference in page
    client.force_login(donor)
    assert client.get("/matching/flagged/").status_code == 403
