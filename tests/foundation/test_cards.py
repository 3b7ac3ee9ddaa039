import pytest

from beneficiaries.models import Household, Member
from config.exceptions import ConflictError
from sponsorship.card_models import Card, CardStatus
from sponsorship.services.cards import card_transition


@pytest.fixture
def card(db, ha_tinh):
    from beneficiaries.models import Level, Locality

    commune = Locality.objects.filter(level=Level.COMMUNE, province=ha_tinh).first()
    household = Household.objects.create(locality=commune, address="Thôn 1", poverty_class="near_poor")
    member = Member.objects.create(
        household=household,
        locality=commune,
        full_name="Nguyễn Thị Hoa",
        name_ascii="nguyen thi hoa",
        date_of_birth="1990-05-01",
        sex="female",
        personal_id="042190123456",
        relation="head",
    )
    return Card.objects.create(
        member=member,
        household=household,
        locality=commune,
        product="hi_household",
        months=12,
        period_start="2026-01-01",
        premium_vnd=1_263_600,
        state_share_vnd=884_520,
        donor_share_vnd=379_080,
    )


def test_a_card_moves_along_its_lifecycle_with_history(card):
    card_transition(card_id=card.pk, to=CardStatus.LISTED)
    card_transition(card_id=card.pk, to=CardStatus.SUBMITTED)
    card = card_transition(
        card_id=card.pk, to=CardStatus.ENROLLED, card_code="CN3424212345678", valid_from="2026-02-01"
    )
    assert card.status == CardStatus.ENROLLED and card.card_code == "CN3424212345678"
    assert [t.to_status for t in card.transitions.all()] == ["listed", "submitted", "enrolled"]


def test_repeating_a_transition_is_a_no_op(card):
    card_transition(card_id=card.pk, to=CardStatus.LISTED)
    card_transition(card_id=card.pk, to=CardStatus.LISTED)
    assert card.transitions.count() == 1


def test_a_funded_card_cannot_jump_to_enrolled(card):
    with pytest.raises(ConflictError):
        card_transition(card_id=card.pk, to=CardStatus.ENROLLED)
    card.refresh_from_db()
    assert card.status == CardStatus.FUNDED


def test_a_member_cannot_hold_two_live_cards_for_one_period(card):
    from django.db import IntegrityError, transaction

    fields = {f: getattr(card, f) for f in ("member", "household", "locality", "product", "months", "period_start")}
    with pytest.raises(IntegrityError), transaction.atomic():
        Card.objects.create(**fields, premium_vnd=1, state_share_vnd=0, donor_share_vnd=1)
    card_transition(card_id=card.pk, to=CardStatus.UNMATCHED)
    Card.objects.create(**fields, premium_vnd=1, state_share_vnd=0, donor_share_vnd=1)
