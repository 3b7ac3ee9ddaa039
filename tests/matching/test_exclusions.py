"""A member whose card the agency rejected is not matched again until re-approved."""

from beneficiaries.models import MemberStatus, MemberTransition
from beneficiaries.services.review import member_approve, member_submit
from sponsorship.card_models import Card
from sponsorship.enrollment.batches import card_reject_refund
from sponsorship.matching import services
from sponsorship.services.cards import card_transition
from sponsorship.services.ledger import check_invariants

from .conftest import PERIOD, communes, make_gift, make_household


def run(province):
    return services.match_province(province_id=province.pk, period_start=PERIOD)


def reject(card):
    for to in ("listed", "submitted"):
        card_transition(card_id=card.pk, to=to)
    card = card_transition(card_id=card.pk, to="rejected", rejection_reason="wrong ID number")
    card_reject_refund(card=card)  # what the card-list import does for a rejected row


def test_agency_rejection_returns_the_member_and_the_money_funds_someone_else(ha_tinh, donor, make_user):
    commune = communes(ha_tinh)[0]
    rejected_hh = make_household(commune)
    make_gift(donor, 400_000)
    run(ha_tinh)
    card = Card.objects.get(household=rejected_hh)
    other = make_household(commune, poverty_class="near_poor")
    reject(card)
    member = rejected_hh.members.get()
    member.refresh_from_db()
    assert member.status == MemberStatus.RETURNED
    assert "wrong ID number" in MemberTransition.objects.filter(member=member).last().reason
    assert run(ha_tinh).cards_funded == 1
    assert Card.objects.filter(household=other, status="funded").exists()
    assert not Card.objects.filter(household=rejected_hh, status="funded").exists()
    assert check_invariants() == []
    # Corrected, resubmitted and approved again: matched again.
    officer = make_user("commune_officer", commune)
    member_submit(user=officer, member=member)
    member_approve(user=make_user("front_reviewer", ha_tinh), member=member)
    make_gift(donor, 400_000)
    assert run(ha_tinh).cards_funded == 1
    assert Card.objects.filter(household=rejected_hh, status="funded").exists()


def test_a_rejected_member_still_approved_is_left_out_of_runs(ha_tinh, donor):
    """Rejections recorded before the member was returned (older data) are caught by the run."""
    hh = make_household(communes(ha_tinh)[0])
    make_gift(donor, 800_000)
    run(ha_tinh)
    card = Card.objects.get(household=hh)
    for to in ("listed", "submitted"):
        card_transition(card_id=card.pk, to=to)
    card_transition(card_id=card.pk, to="rejected", rejection_reason="duplicate")
    # (no card_reject_refund: the member stays approved, as before this change)
    assert hh.members.get().status == MemberStatus.APPROVED
    assert run(ha_tinh).cards_funded == 0
