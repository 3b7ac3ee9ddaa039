"""Months of state support for voluntary social insurance (FACTS §3: at most 10 years): the
agency's card list enrolling a voluntary-SI card adds its months to the member's count once
(a re-imported list adds nothing), and once the count reaches the cap, pricing gives the member
no more support (the donor's share is the whole contribution)."""

import csv
import io
from datetime import date

from beneficiaries import pricing
from beneficiaries.models import Household, Level, Locality, Member, MemberStatus
from beneficiaries.models import Product as PricingProduct
from sponsorship.card_models import Card
from sponsorship.enrollment import cardlist
from sponsorship.services.cards import card_transition


def _csv(rows) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(cardlist.D10A_HEADERS)
    w.writerows(rows)
    return buf.getvalue().encode("utf-8-sig")


def _member(ha_noi) -> Member:
    commune = Locality.objects.filter(level=Level.COMMUNE, province=ha_noi).order_by("code").first()
    hh = Household.objects.create(locality=commune, external_ref="VSI1", poverty_class="poor")
    return Member.objects.create(
        household=hh,
        locality=commune,
        full_name="Đỗ Thị Tự Nguyện",
        name_ascii="do thi tu nguyen",
        date_of_birth=date(1975, 3, 1),
        sex="female",
        personal_id="001175012345",
        relation="head",
        status=MemberStatus.APPROVED,
    )


def _price(member, months, on):
    member.refresh_from_db()
    return pricing.price_member(member=member, product=PricingProduct.VOLUNTARY_SI, months=months, on_date=on)


def _submitted_card(member, *, start, months) -> Card:
    """A funded voluntary-SI card priced as the platform prices it, sent to the agency."""
    price = _price(member, months, start)
    card = Card.objects.create(
        member=member,
        household=member.household,
        locality=member.locality,
        product="si_voluntary",
        months=months,
        period_start=start,
        premium_vnd=price.premium_vnd,
        state_share_vnd=price.state_share_vnd,
        donor_share_vnd=price.donor_share_vnd,
    )
    card_transition(card_id=card.pk, to="listed")
    card_transition(card_id=card.pk, to="submitted")
    return card


def _enrol(card):
    job = cardlist.cardlist_import(content=_csv(cardlist.d10a_rows_for_cards([card])), file_name="d10a.csv")
    card.refresh_from_db()
    return job


def test_enrolled_voluntary_si_months_are_counted_once_and_the_support_stops_at_the_cap(ha_noi):
    member = _member(ha_noi)
    first = date(2026, 1, 1)
    assert _price(member, 12, first).state_share_vnd == 12 * 165_000  # poor: 50 % of 330,000
    card = _submitted_card(member, start=first, months=60)
    assert member.vsi_support_months_used == 0  # sent, not yet confirmed: nothing used
    assert _enrol(card).enrolled == 1 and card.status == "enrolled"
    member.refresh_from_db()
    assert member.vsi_support_months_used == 60
    # The same list again (the agency re-sends it): nothing is counted twice.
    assert _enrol(card).unchanged == 1
    member.refresh_from_db()
    assert member.vsi_support_months_used == 60
    # With 60 months used, a 66-month card gets support for only the 60 months left.
    per_month = _price(member, 1, date(2031, 1, 1)).state_share_vnd  # 50 % at 2031's minimum income
    assert per_month > 0 and _price(member, 66, date(2031, 1, 1)).state_share_vnd == 60 * per_month
    second = _submitted_card(member, start=date(2031, 1, 1), months=60)
    _enrol(second)
    member.refresh_from_db()
    assert member.vsi_support_months_used == 120  # ten years
    after = _price(member, 12, date(2036, 1, 1))
    assert after.state_share_vnd == 0 and after.donor_share_vnd == after.premium_vnd
    # A card priced without support uses none, and the count never passes the cap.
    third = _submitted_card(member, start=date(2036, 1, 1), months=12)
    _enrol(third)
    member.refresh_from_db()
    assert third.status == "enrolled" and member.vsi_support_months_used == 120


def test_household_cards_do_not_count_as_voluntary_si_support(ha_noi):
    member = _member(ha_noi)
    card = Card.objects.create(
        member=member,
        household=member.household,
        locality=member.locality,
        product="hi_household",
        months=12,
        period_start=date(2026, 1, 1),
        premium_vnd=1_263_600,
        state_share_vnd=884_520,
        donor_share_vnd=379_080,
    )
    card_transition(card_id=card.pk, to="listed")
    card_transition(card_id=card.pk, to="submitted")
    assert _enrol(card).enrolled == 1
    member.refresh_from_db()
    assert member.vsi_support_months_used == 0
