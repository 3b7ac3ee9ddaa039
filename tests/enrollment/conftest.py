"""Personas and cards for enrollment tests. Cards are created directly in `funded` (the matching
issue will create them in production), each paid by one gift through an Allocation row of a
recorded matching run, as the matcher writes them."""

from datetime import date

import pytest

from beneficiaries.models import Household, Level, Locality, Member
from donors.models import Role
from sponsorship.card_models import Card
from sponsorship.matching.models import Allocation, MatchingRun, RunStatus
from sponsorship.models import Donation
from sponsorship.services.ledger import credit, debit, ledger_post

FUND = "loc:any|hi_household"


@pytest.fixture
def hn_commune(ha_noi):
    return Locality.objects.filter(level=Level.COMMUNE, province=ha_noi).order_by("code").first()


@pytest.fixture
def ht_commune(ha_tinh):
    return Locality.objects.filter(level=Level.COMMUNE, province=ha_tinh).order_by("code").first()


@pytest.fixture
def donor_lan(make_user):
    return make_user(Role.DONOR, email="lan.donor@example.test")


@pytest.fixture
def gift(donor_lan):
    d = Donation.objects.create(
        donor=donor_lan,
        method="bank",
        amount_vnd=10_000_000,
        appearance="named",
        reference="CTTEST0001",
        fund_key=FUND,
        status="succeeded",
        amount_received_vnd=10_000_000,
    )
    # The gift's own posting: what it brought (the allocation guard counts it).
    ledger_post(
        key=f"test:paid:{d.pk}",
        entries=[debit("bank_clearing", 10_000_000), credit("donor_funds", 10_000_000, FUND)],
        donation=d,
    )
    return d


_seq = [0]


def fund_card(card, gift, amount: int, fund: str = FUND) -> Allocation:
    """The gift pays `amount` of the card, as one allocation of a (recorded) matching run."""
    run = MatchingRun.objects.create(status=RunStatus.DONE, cards_funded=1, allocations=1)
    return Allocation.objects.create(
        run=run, donation=gift, card=card, fund=fund, amount_vnd=amount, score=0, rule_version=0
    )


@pytest.fixture
def make_card(gift):
    def make(commune, *, product="hi_household", period_start=date(2022, 11, 1), member=None, pid=None, si=""):
        _seq[0] += 1
        n = _seq[0]
        if member is None:
            household = Household.objects.create(
                locality=commune, external_ref=f"HH{n}", address=f"Thôn {n}", poverty_class="poor"
            )
            member = Member.objects.create(
                household=household,
                locality=commune,
                full_name=f"Người {n}",
                name_ascii=f"nguoi {n}",
                date_of_birth=date(1980, 1, 1),
                sex="female",
                personal_id=pid or f"0011{n:08d}",
                si_code=si,
                relation="head",
            )
        card = Card.objects.create(
            member=member,
            household=member.household,
            locality=commune,
            product=product,
            months=12,
            period_start=period_start,
            premium_vnd=1_263_600,
            state_share_vnd=884_520,
            donor_share_vnd=379_080,
        )
        fund_card(card, gift, 379_080)
        ledger_post(
            key=f"test:alloc:{card.pk}",
            entries=[debit("donor_funds", 379_080, FUND), credit("allocated_to_cards", 379_080, FUND)],
        )
        return card

    return make
