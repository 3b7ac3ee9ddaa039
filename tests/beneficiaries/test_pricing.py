from datetime import date, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from beneficiaries.models import (
    Household,
    Jurisdiction,
    Member,
    PovertyClass,
    Product,
    Relation,
    SupportRule,
)
from beneficiaries.pricing import price_household, price_member
from config.exceptions import ApplicationError

# FACTS §2: valid from → 12-month premium of the 1st..5th member of a household.
TABLE = {
    date(2019, 7, 1): [804_600, 563_220, 482_760, 402_300, 321_840],
    date(2023, 7, 1): [972_000, 680_400, 583_200, 486_000, 388_800],
    date(2024, 7, 1): [1_263_600, 884_520, 758_160, 631_800, 505_440],
    date(2026, 7, 1): [1_366_200, 956_340, 819_720, 683_100, 546_480],
}

H = HealthCheck.function_scoped_fixture


def household(locality, poverty_class=PovertyClass.NONE, **flags):
    return Household(locality=locality, external_ref="H1", poverty_class=poverty_class, **flags)


def person(hh, n=1, *, relation=Relation.OTHER, dob=date(1980, 1, 1), **extra):
    return Member(
        household=hh,
        locality=hh.locality,
        full_name=f"Người {n}",
        date_of_birth=dob,
        sex="male",
        personal_id=f"0420800{n:05d}",
        relation=relation,
        **extra,
    )


@pytest.mark.parametrize("valid_from,row", TABLE.items())
@pytest.mark.parametrize("position", [1, 2, 3, 4, 5])
def test_household_ladder_reproduces_every_cell_of_the_published_table(thanh_sen, valid_from, row, position):
    hh = household(thanh_sen)
    price = price_member(member=person(hh), on_date=valid_from, ladder_position=position)
    assert price.eligible and price.group == "GD"
    assert price.premium_vnd == row[position - 1]
    assert price.donor_share_vnd == row[position - 1]
    assert price.state_share_vnd == 0


def test_sixth_member_pays_like_the_fifth(thanh_sen):
    price = price_member(member=person(household(thanh_sen)), on_date=date(2024, 7, 1), ladder_position=6)
    assert price.premium_vnd == 505_440


def test_household_of_five_prices_each_place_on_the_ladder_once(thanh_sen):
    hh = household(thanh_sen)
    members = [person(hh, i, relation=Relation.HEAD if i == 3 else Relation.CHILD) for i in range(1, 6)]
    result = price_household(household=hh, on_date=date(2025, 1, 1), members=members)
    assert [p.premium_vnd for _m, p in result.lines] == TABLE[date(2024, 7, 1)]
    assert result.lines[0][0].personal_id == members[2].personal_id  # the head takes the 1st place
    assert result.donor_share_vnd == sum(TABLE[date(2024, 7, 1)])


@pytest.mark.parametrize("on_date,expected", [(date(2025, 1, 1), 379_080), (date(2026, 7, 1), 409_860)])
def test_near_poor_person_owes_thirty_percent_of_the_full_premium(thanh_sen, on_date, expected):
    hh = household(thanh_sen, PovertyClass.NEAR_POOR)
    price = price_member(member=person(hh), on_date=on_date)
    assert price.donor_share_vnd == expected
    assert price.state_share_vnd + price.donor_share_vnd == price.premium_vnd
    assert price.ladder_position is None and price.group == "near_poor"
    assert len(price.rule_ids) == 1


@pytest.mark.parametrize(
    "on_date,expected", [(date(2025, 8, 14), 884_520), (date(2025, 8, 15), 631_800), (date(2026, 7, 1), 683_100)]
)
def test_student_share_changes_on_15_august_2025(thanh_sen, on_date, expected):
    price = price_member(member=person(household(thanh_sen), is_student=True), on_date=on_date)
    assert price.donor_share_vnd == expected


def test_near_poor_student_gets_the_highest_national_share_only(thanh_sen):
    hh = household(thanh_sen, PovertyClass.NEAR_POOR)
    price = price_member(member=person(hh, is_student=True), on_date=date(2025, 9, 1))
    assert price.donor_share_vnd == 379_080


def test_poor_household_member_is_ineligible_for_a_hi_card(thanh_sen):
    price = price_member(member=person(household(thanh_sen, PovertyClass.POOR)), on_date=date(2025, 9, 1))
    assert not price.eligible and price.reason == "poor_household" and price.donor_share_vnd == 0


def test_member_with_a_valid_card_is_ineligible_until_it_expires(thanh_sen):
    hh = household(thanh_sen, PovertyClass.NEAR_POOR)
    m = person(hh, card_group="CN", card_valid_until=date(2025, 12, 31))
    assert price_member(member=m, on_date=date(2025, 12, 31)).reason == "already_covered"
    assert price_member(member=m, on_date=date(2026, 1, 1)).eligible


def test_near_poor_in_a_poor_commune_owes_nothing(thanh_sen):
    hh = household(thanh_sen, PovertyClass.NEAR_POOR, is_poor_commune=True)
    price = price_member(member=person(hh), on_date=date(2025, 9, 1))
    assert not price.eligible and price.reason == "state_pays_all"


def test_province_top_up_lowers_the_donor_share(thanh_sen, ha_tinh):
    SupportRule.objects.create(
        group="near_poor",
        jurisdiction=Jurisdiction.PROVINCE,
        locality=ha_tinh,
        share="0.3",
        valid_from=date(2025, 1, 1),
        source="test resolution",
    )
    price = price_member(member=person(household(thanh_sen, PovertyClass.NEAR_POOR)), on_date=date(2025, 9, 1))
    assert (price.state_share_vnd, price.province_share_vnd, price.donor_share_vnd) == (884_520, 379_080, 0)
    assert not price.eligible


def test_months_not_sold_are_refused(thanh_sen):
    with pytest.raises(ApplicationError):
        price_member(member=person(household(thanh_sen)), on_date=date(2025, 1, 1), months=9, ladder_position=1)
    assert price_member(member=person(household(thanh_sen), is_student=True), on_date=date(2025, 9, 1), months=9)


@pytest.mark.parametrize("on_date,expected", [(date(2025, 7, 1), 165_000), (date(2025, 6, 30), 231_000)])
def test_voluntary_si_poor_participant_at_the_minimum_monthly(thanh_sen, on_date, expected):
    hh = household(thanh_sen, PovertyClass.POOR)
    price = price_member(member=person(hh), product=Product.VOLUNTARY_SI, months=1, on_date=on_date)
    assert price.eligible and price.premium_vnd == 330_000
    assert price.donor_share_vnd == expected


def test_voluntary_si_support_stops_after_ten_years(thanh_sen):
    hh = household(thanh_sen, PovertyClass.POOR)
    price = price_member(
        member=person(hh), product=Product.VOLUNTARY_SI, months=12, on_date=date(2025, 9, 1), support_months_used=114
    )
    assert price.state_share_vnd == 6 * 165_000


@pytest.mark.parametrize("used,supported_months", [(0, 12), (108, 12), (114, 6), (120, 0), (130, 0)])
def test_voluntary_si_cap_applies_the_support_months_stored_on_the_member(thanh_sen, used, supported_months):
    hh = household(thanh_sen, PovertyClass.POOR)
    hh.save()
    member = person(hh, vsi_support_months_used=used)
    member.save()
    member.refresh_from_db()
    price = price_member(member=member, product=Product.VOLUNTARY_SI, months=12, on_date=date(2025, 9, 1))
    assert price.state_share_vnd == supported_months * 165_000
    assert price.donor_share_vnd == 12 * 330_000 - supported_months * 165_000


def test_voluntary_si_income_above_twenty_base_salaries_is_refused(thanh_sen):
    with pytest.raises(ApplicationError):
        price_member(
            member=person(household(thanh_sen)),
            product=Product.VOLUNTARY_SI,
            months=1,
            on_date=date(2025, 9, 1),
            income_vnd=20 * 2_340_000 + 1,
        )


dates = st.dates(min_value=date(2019, 7, 1), max_value=date(2028, 12, 31))
classes = st.sampled_from(PovertyClass.values)


@settings(max_examples=60, deadline=None, suppress_health_check=[H])
@given(on_date=dates, poverty_class=classes, is_student=st.booleans(), position=st.integers(1, 8))
def test_donor_share_is_between_zero_and_the_premium(thanh_sen, on_date, poverty_class, is_student, position):
    m = person(household(thanh_sen, poverty_class), is_student=is_student)
    price = price_member(member=m, on_date=on_date, ladder_position=position)
    assert 0 <= price.donor_share_vnd <= price.premium_vnd
    assert price.state_share_vnd + price.province_share_vnd + price.donor_share_vnd == price.premium_vnd


@settings(max_examples=40, deadline=None, suppress_health_check=[H])
@given(
    on_date=dates,
    poverty_class=classes,
    students=st.lists(st.booleans(), min_size=0, max_size=7),
    new_is_student=st.booleans(),
    new_is_head=st.booleans(),
    dob_days=st.integers(0, 30000),
)
def test_adding_a_member_never_lowers_a_households_total(
    thanh_sen, on_date, poverty_class, students, new_is_student, new_is_head, dob_days
):
    hh = household(thanh_sen, poverty_class)
    members = [person(hh, i, is_student=s, relation=Relation.CHILD) for i, s in enumerate(students, start=1)]
    before = price_household(household=hh, on_date=on_date, members=members)
    newcomer = person(
        hh,
        99,
        is_student=new_is_student,
        relation=Relation.HEAD if new_is_head else Relation.CHILD,
        dob=date(1930, 1, 1) + timedelta(days=dob_days),
    )
    after = price_household(household=hh, on_date=on_date, members=[*members, newcomer])
    assert after.donor_share_vnd >= before.donor_share_vnd
    assert after.premium_vnd >= before.premium_vnd


@settings(max_examples=40, deadline=None, suppress_health_check=[H])
@given(on_date=dates)
def test_the_date_picks_the_schedule_in_force(thanh_sen, on_date):
    in_force = max(d for d in TABLE if d <= on_date)
    price = price_member(member=person(household(thanh_sen)), on_date=on_date, ladder_position=1)
    assert price.premium_vnd == TABLE[in_force][0]
