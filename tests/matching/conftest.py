"""Matching fixtures: approved households in real communes and cleared gifts with their
ledger postings, built directly (the registry and payment flows are tested elsewhere)."""

import itertools
from datetime import date

import pytest

from beneficiaries.models import Household, Level, Locality, Member, MemberStatus, Relation
from sponsorship.models import Account, Donation
from sponsorship.services.donations import fund_key, new_reference
from sponsorship.services.ledger import credit, debit, ledger_post

PERIOD = date(2026, 1, 1)
_seq = itertools.count(1)


def communes(province, n=2):
    return list(Locality.objects.filter(level=Level.COMMUNE, province=province).order_by("code")[:n])


def make_household(commune, *, size=1, poverty_class="near_poor", valid_until=None):
    hh = Household.objects.create(locality=commune, external_ref=f"H{next(_seq)}", poverty_class=poverty_class)
    for i in range(size):
        n = next(_seq)
        Member.objects.create(
            household=hh,
            locality=commune,
            full_name=f"Người {n}",
            name_ascii=f"nguoi {n}",
            date_of_birth=date(1980, 1, 1),
            sex="male",
            personal_id=f"0{n:011d}",
            relation=Relation.HEAD if i == 0 else Relation.CHILD,
            status=MemberStatus.APPROVED,
            card_valid_until=valid_until,
        )
    return hh


def make_gift(donor, amount, *, locality=None, product="", group=""):
    d = Donation.objects.create(
        donor=donor,
        method="bank",
        amount_vnd=amount,
        locality=locality,
        product=product,
        beneficiary_group=group,
        appearance="anonymous",
        status="succeeded",
        reference=new_reference(),
        amount_received_vnd=amount,
        fund_key=fund_key(locality_id=locality.pk if locality else None, product=product, group=group),
    )
    ledger_post(
        key=f"bank_paid:test:{d.pk}",
        entries=[debit(Account.BANK_CLEARING, amount), credit(Account.DONOR_FUNDS, amount, d.fund_key)],
        kind="bank_paid",
        donation=d,
    )
    return d


@pytest.fixture
def donor(make_user):
    return make_user("donor")
