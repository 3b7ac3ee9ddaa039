"""Data for the reliability suites, made through the real services where money is involved."""

import itertools
import time
from datetime import date

from django.db import transaction
from django.db.models import Sum

PERIOD = date(2026, 1, 1)
_seq = itertools.count(int(time.time() * 10) % 10**9)


def communes(province, n=2):
    from beneficiaries.models import Level, Locality

    return list(Locality.objects.filter(level=Level.COMMUNE, province=province).order_by("code")[:n])


def households(province, *, per_commune=3, n_communes=2, sizes=(1, 2, 3)):
    """Approved near-poor households (registry rows; no money involved)."""
    from beneficiaries.models import Household, Member, MemberStatus, Relation
    from beneficiaries.pricing_seed import seed_pricing

    seed_pricing()  # idempotent; a transactional test before us may have flushed it
    made = []
    for commune in communes(province, n_communes):
        for i in range(per_commune):
            hh = Household.objects.create(locality=commune, external_ref=f"R{next(_seq)}", poverty_class="near_poor")
            for j in range(sizes[i % len(sizes)]):
                n = next(_seq)
                Member.objects.create(
                    household=hh, locality=commune, full_name=f"Người {n}", name_ascii=f"nguoi {n}",
                    date_of_birth=date(1970 + j, 1, 1), sex="female", personal_id=f"8{n:011d}",
                    relation=Relation.HEAD if j == 0 else Relation.CHILD, status=MemberStatus.APPROVED,
                )  # fmt: skip
            made.append(hh)
    return made


def pi_object(donation, fee=0) -> dict:
    return {
        "id": f"pi_rel_{donation.pk}",
        "object": "payment_intent",
        "amount": donation.amount_vnd,
        "amount_received": donation.amount_vnd,
        "currency": "vnd",
        "status": "succeeded",
        "metadata": {"donation_id": str(donation.pk)},
        "latest_charge": {"id": f"ch_rel_{donation.pk}", "balance_transaction": {"fee": fee}},
    }


def succeeded_event(donation, fee=0) -> dict:
    return {
        "id": f"evt_rel_{donation.pk}",
        "object": "event",
        "type": "payment_intent.succeeded",
        "created": int(time.time()),
        "data": {"object": pi_object(donation, fee)},
    }


def card_gift(donor, amount, locality=None, *, paid=True):
    """A card gift; paid through the same applier the webhook uses."""
    from sponsorship.services.donations import donation_create
    from sponsorship.services.payments import apply_payment_intent

    d = donation_create(donor=donor, method="card", amount_vnd=amount, locality=locality)[0]
    if paid:
        apply_payment_intent(pi_object(d), source="webhook")
        d.refresh_from_db()
    return d


def snapshot(provinces) -> dict:
    """What a matching outcome is, independent of which gift paid which card: the members
    with a live card and the share each is funded with, money per fund, ledger totals."""
    from sponsorship.card_models import Card
    from sponsorship.matching.models import Allocation
    from sponsorship.services import ledger

    cards = (
        Card.objects.filter(locality__province__in=provinces)
        .exclude(status__in=["rejected", "unmatched"])
        .annotate(paid=Sum("allocations__amount_vnd"))
    )
    return {
        "cards": {c.member.personal_id: (c.donor_share_vnd, c.paid) for c in cards.select_related("member")},
        "allocated_per_fund": dict(
            Allocation.objects.values_list("fund").annotate(s=Sum("amount_vnd")).values_list("fund", "s")
        ),
        "allocation_rows": Allocation.objects.count(),
        "donor_funds": ledger.fund_balances("donor_funds"),
        "allocated_to_cards": ledger.fund_balances("allocated_to_cards"),
        "trial_balance": ledger.trial_balance(),
    }


def rolled_back(fn):
    """Run fn() in a transaction that is rolled back; return its result (the serial truth)."""
    with transaction.atomic():
        result = fn()
        transaction.set_rollback(True)
    return result


def assert_no_double_allocation():
    """Each card funded once, never beyond its share; no gift allocated beyond what it has."""
    from django.db import connection

    from sponsorship.services.ledger import check_invariants

    with connection.cursor() as cur:
        cur.execute(
            "SELECT c.id FROM sponsorship_card c JOIN sponsorship_allocation a ON a.card_id = c.id "
            "GROUP BY c.id, c.donor_share_vnd HAVING SUM(a.amount_vnd) <> c.donor_share_vnd"
        )
        assert cur.fetchall() == [], "a card funded more or less than its share"
        cur.execute(
            "SELECT a.donation_id FROM sponsorship_allocation a GROUP BY a.donation_id "
            "HAVING SUM(a.amount_vnd) > (SELECT -SUM(e.amount) FROM sponsorship_ledgerentry e "
            "JOIN sponsorship_ledgertransaction t ON t.id = e.transaction_id "
            "WHERE t.donation_id = a.donation_id AND e.account = 'donor_funds')"
        )
        assert cur.fetchall() == [], "a gift allocated beyond its money"
        cur.execute(
            "SELECT member_id FROM sponsorship_card WHERE status NOT IN ('rejected', 'unmatched') "
            "GROUP BY member_id, product, period_start HAVING COUNT(*) > 1"
        )
        assert cur.fetchall() == [], "two live cards for one member"
    assert check_invariants() == []
