"""The matcher writes cards and allocations without PostgreSQL's per-row foreign-key triggers
(config/bulk_fk.py): every key of both tables must be declared, and an orphan is refused."""

import pytest
from django.db import IntegrityError, connection, transaction

from config.bulk_fk import can_skip_row_triggers, constrained_foreign_keys
from sponsorship.card_models import Card
from sponsorship.matching import services
from sponsorship.matching.models import Allocation, MatchingRun

from .conftest import PERIOD, communes, make_gift, make_household


def test_every_foreign_key_of_the_tables_written_is_declared():
    declared = {(r.column, r.parent) for r in services.written_references(run_id=1)}
    expected = set(constrained_foreign_keys(Card, Allocation).items())
    # Card: member, household, locality, renewal_of; Allocation: run, donation, card.
    assert len(expected) == 7
    assert declared == expected


def _stage_one_need(cur, *, member, donor_share=379_080):
    services._create_temp_tables(cur)
    cur.execute(
        "INSERT INTO mneed (household_id, member_id, locality_id, grp, premium, state_share, province_share, "
        "donor_share, ladder_position, schedule_id, rule_ids, score, components, funded) "
        "VALUES (%s, %s, %s, 'GD', %s, 0, 0, %s, 1, NULL, '[]', 1, '{}', true)",
        [member["household_id"], member["id"], member["locality_id"], donor_share, donor_share],
    )


def _write(cur, run):
    return services.write_cards_and_allocations(
        cur, run_id=run.pk, product="hi_household", months=12, period_start=PERIOD, version=1
    )


@pytest.mark.django_db(transaction=True)
def test_the_matchers_writes_skip_the_row_triggers_and_are_checked(ha_tinh, donor):
    commune = communes(ha_tinh)[0]
    hh = make_household(commune, size=1)
    member = hh.members.values("id", "household_id", "locality_id").get()
    gift = make_gift(donor, 500_000)
    run = MatchingRun.objects.create(province=ha_tinh)
    with transaction.atomic(), connection.cursor() as cur:
        # Otherwise the per-row triggers run (deferred to a commit this test never reaches)
        # and the refusals below would prove nothing.
        assert can_skip_row_triggers(cur)
        _stage_one_need(cur, member=member)
        cur.execute("INSERT INTO mpair VALUES (%s, %s, %s, 379080)", [gift.pk, member["id"], gift.fund_key])
        assert _write(cur, run) == 1
    card = Card.objects.get(member_id=member["id"])
    assert Allocation.objects.get(card=card).donation_id == gift.pk
    # No history row for the initial state: it is derived from the card.
    assert card.transitions.count() == 0
    assert [(h["from_status"], h["to_status"], h["reason"]) for h in card.history()] == [
        ("", "funded", f"matching run {run.pk}")
    ]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("orphan", ["member", "donation"])
def test_an_orphan_written_by_the_matcher_is_refused(ha_tinh, donor, orphan):
    commune = communes(ha_tinh)[0]
    member = make_household(commune, size=1).members.values("id", "household_id", "locality_id").get()
    gift = make_gift(donor, 500_000)
    run = MatchingRun.objects.create(province=ha_tinh)
    missing = 987_654_321
    if orphan == "member":
        member = {**member, "id": missing}
    donation_id = missing if orphan == "donation" else gift.pk
    column = {"member": "sponsorship_card.member_id", "donation": "sponsorship_allocation.donation_id"}[orphan]
    with pytest.raises(IntegrityError, match=rf"{column}: 1 value.*{missing}"):
        with transaction.atomic(), connection.cursor() as cur:
            _stage_one_need(cur, member=member)
            # The allocation guard (ours, ENABLE ALWAYS) would refuse a gift without money
            # before the key is checked: it is disabled inside this transaction, which rolls
            # back, so that what refuses here is the foreign-key check.
            if orphan == "donation":
                cur.execute("ALTER TABLE sponsorship_allocation DISABLE TRIGGER sponsorship_allocation_guard")
            cur.execute("INSERT INTO mpair VALUES (%s, %s, 'f', 379080)", [donation_id, member["id"]])
            _write(cur, run)
    assert not Card.objects.filter(member__household__locality=commune).exists()
    assert not Allocation.objects.exists()
