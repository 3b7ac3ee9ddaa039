"""The matcher's SQL price (sponsorship/matching/pricing_sql.py) equals the registry's Python
service (beneficiaries/pricing.py) field by field, on the real database and its seeded
versioned pricing data."""

import itertools
import json
from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.db import connection, transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from beneficiaries.models import Household, Jurisdiction, Member, Relation, SupportRule
from beneficiaries.pricing import price_household
from sponsorship.matching.pricing_sql import create_candidates, price_rows

from .conftest import communes

_seq = itertools.count(1)

# FACTS §2: valid from → 12-month premium of the 1st..5th member of a household (GD).
TABLE = {
    date(2019, 7, 1): [804_600, 563_220, 482_760, 402_300, 321_840],
    date(2023, 7, 1): [972_000, 680_400, 583_200, 486_000, 388_800],
    date(2024, 7, 1): [1_263_600, 884_520, 758_160, 631_800, 505_440],
    date(2026, 7, 1): [1_366_200, 956_340, 819_720, 683_100, 546_480],
}


class Rollback(Exception):
    pass


def _household(commune, poverty_class="none", **flags):
    return Household.objects.create(
        locality=commune, external_ref=f"P{next(_seq)}", poverty_class=poverty_class, **flags
    )


def _member(hh, *, relation=Relation.OTHER, dob=date(1980, 1, 1), status="approved", **extra):
    n = next(_seq)
    return Member.objects.create(
        household=hh, locality=hh.locality, full_name=f"Người {n}", name_ascii=f"nguoi {n}", date_of_birth=dob,
        sex="female", personal_id=f"1{n:011d}", relation=relation, status=status, **extra,
    )  # fmt: skip


def sql_prices(members, *, product="hi", months=12, on_date):
    with connection.cursor() as cur:
        create_candidates(cur, [m.pk for m in members])
        return price_rows(cur, product=product, months=months, on_date=on_date)


def assert_same(households, *, product, months, on_date):
    """Every household priced together in one SQL statement vs price_household one by one."""
    sql = sql_prices([m for _hh, ms in households for m in ms], product=product, months=months, on_date=on_date)
    lines = [
        line
        for hh, ms in households
        for line in price_household(household=hh, product=product, months=months, on_date=on_date, members=ms).lines
    ]
    assert len(sql) == len(lines)
    for m, p in lines:
        row = sql[m.pk]
        got = (
            row["eligible"], row["reason"], row["grp"], row["premium"], row["state_share"], row["province_share"],
            row["donor_share"], row["ladder_position"], row["schedule_id"], tuple(json.loads(row["rule_ids"])),
        )  # fmt: skip
        want = (
            p.eligible, p.reason, p.group, p.premium_vnd, p.state_share_vnd, p.province_share_vnd,
            p.donor_share_vnd, p.ladder_position, p.schedule_id, p.rule_ids,
        )  # fmt: skip
        assert got == want, (m.relation, m.date_of_birth, m.is_student, m.status, m.card_valid_until)


@pytest.mark.parametrize("valid_from,row", TABLE.items())
def test_sql_ladder_reproduces_every_cell_of_the_published_table(ha_tinh, valid_from, row):
    hh = _household(communes(ha_tinh)[0])
    # Five GD members; the head takes the 1st place, the others by date of birth.
    members = [_member(hh, relation=Relation.CHILD, dob=date(1990 + i, 1, 1)) for i in range(4)]
    members.append(_member(hh, relation=Relation.HEAD, dob=date(2000, 1, 1)))
    prices = sql_prices(members, on_date=valid_from)
    by_place = {p["ladder_position"]: (p["premium"], p["donor_share"]) for p in prices.values()}
    assert by_place == {i + 1: (cell, cell) for i, cell in enumerate(row)}
    assert prices[members[-1].pk]["ladder_position"] == 1


@pytest.mark.parametrize("on_date,expected", [(date(2025, 1, 1), 379_080), (date(2026, 7, 1), 409_860)])
def test_sql_near_poor_share_is_the_worked_check(ha_tinh, on_date, expected):
    m = _member(_household(communes(ha_tinh)[0], "near_poor"))
    assert sql_prices([m], on_date=on_date)[m.pk]["donor_share"] == expected


member_st = st.fixed_dictionaries(
    {
        "relation": st.sampled_from([Relation.HEAD, Relation.CHILD, Relation.OTHER]),
        "dob": st.dates(date(1940, 1, 1), date(2015, 12, 31)),
        "is_student": st.booleans(),
        "status": st.sampled_from(["approved", "approved", "approved", "rejected", "suspended"]),
        "covered_days": st.one_of(st.none(), st.integers(-400, 400)),
        # Months of voluntary-SI support already used, around the 10-year cap (120).
        "vsi_used": st.sampled_from([0, 0, 60, 113, 119, 120]),
    }
)
household_st = st.fixed_dictionaries(
    {
        "poverty_class": st.sampled_from(["none", "near_poor", "poor", "average_farming"]),
        "is_poor_commune": st.booleans(),
        "is_ethnic_minority": st.booleans(),
        "members": st.lists(member_st, min_size=1, max_size=7),
    }
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    households=st.lists(household_st, min_size=1, max_size=3),
    days=st.integers(0, (date(2027, 6, 30) - date(2022, 1, 1)).days),
    product=st.sampled_from(["hi", "hi", "vsi"]),
    months=st.sampled_from([3, 6, 12]),
    top_up=st.one_of(st.none(), st.tuples(st.sampled_from(["province", "commune"]), st.sampled_from(["0.1", "0.3"]))),
)
def test_sql_price_equals_the_python_service(ha_tinh, households, days, product, months, top_up):
    on_date = date(2022, 1, 1) + timedelta(days=days)
    commune = communes(ha_tinh)[0]
    try:
        with transaction.atomic():
            if top_up is not None:
                level, share = top_up
                SupportRule.objects.create(
                    group="near_poor", jurisdiction=level, locality=ha_tinh if level == "province" else commune,
                    share=Decimal(share), valid_from=date(2024, 1, 1), source="test",
                )  # fmt: skip
                SupportRule.objects.create(
                    group="student", jurisdiction=Jurisdiction.COMMUNE, locality=commune, share=Decimal("0.1"),
                    valid_from=date(2022, 6, 1), valid_to=date(2026, 6, 30), source="test",
                )  # fmt: skip
            priced = []
            for spec in households:
                hh = _household(
                    commune, spec["poverty_class"], is_poor_commune=spec["is_poor_commune"],
                    is_ethnic_minority=spec["is_ethnic_minority"],
                )  # fmt: skip
                members = [
                    _member(
                        hh, relation=m["relation"], dob=m["dob"], status=m["status"], is_student=m["is_student"],
                        card_valid_until=None if m["covered_days"] is None else on_date + timedelta(m["covered_days"]),
                        vsi_support_months_used=m["vsi_used"],
                    )
                    for m in spec["members"]
                ]  # fmt: skip
                priced.append((hh, members))
            assert_same(priced, product=product, months=months, on_date=on_date)
            raise Rollback
    except Rollback:
        pass


def test_sql_vsi_support_stops_at_the_cap_like_the_python_service(ha_tinh):
    hh = _household(communes(ha_tinh)[0], "poor")
    fresh, nearly, spent = (_member(hh, vsi_support_months_used=used) for used in (0, 117, 120))
    on = date(2026, 1, 1)
    rows = sql_prices([fresh, nearly, spent], product="vsi", months=12, on_date=on)
    assert rows[fresh.pk]["state_share"] > rows[nearly.pk]["state_share"] > rows[spent.pk]["state_share"] == 0
    assert rows[spent.pk]["donor_share"] == rows[spent.pk]["premium"]
    assert_same([(hh, [fresh, nearly, spent])], product="vsi", months=12, on_date=on)


def test_sql_near_poor_in_a_poor_commune_owes_nothing(ha_tinh):
    hh = _household(communes(ha_tinh)[0], "near_poor", is_poor_commune=True)
    m = _member(hh)
    row = sql_prices([m], on_date=date(2025, 9, 1))[m.pk]
    assert (row["eligible"], row["reason"], row["donor_share"]) == (False, "state_pays_all", 0)
    assert_same([(hh, [m])], product="hi", months=12, on_date=date(2025, 9, 1))
