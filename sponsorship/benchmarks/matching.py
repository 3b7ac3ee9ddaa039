"""Matching: allocations per second of the real matcher, and the ratio to the same run's COPY
rate (goal: at least 10 %).

Creates N approved near-poor members (households of 1–3) in one province and M cleared,
unrestricted gifts with their ledger postings (bulk inserts), then times `match_province`
(pricing in Python included, commit included) and, separately, the set-based SQL part.
Everything it created is deleted afterwards."""

import random
import time
from datetime import date

from django.db import connection, transaction

from .report import Stopwatch

BENCH_EMAIL = "bench-matching@chungtay.invalid"
PERIOD = date(2026, 1, 1)


def add_arguments(parser):
    parser.add_argument("--members", type=int, default=20_000)
    parser.add_argument("--gifts", type=int, default=2_000)
    parser.add_argument("--copy-rows", type=int, default=200_000)


def _cleanup():
    from donors.models import User

    user = User.objects.filter(email=BENCH_EMAIL).first()
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute(
            "DELETE FROM sponsorship_allocation WHERE card_id IN (SELECT c.id FROM sponsorship_card c "
            "JOIN beneficiaries_household h ON h.id = c.household_id WHERE h.external_ref LIKE 'BENCHM-%%')"
        )
        cur.execute(
            "DELETE FROM sponsorship_cardtransition WHERE card_id IN (SELECT c.id FROM sponsorship_card c "
            "JOIN beneficiaries_household h ON h.id = c.household_id WHERE h.external_ref LIKE 'BENCHM-%%')"
        )
        cur.execute(
            "DELETE FROM sponsorship_card WHERE household_id IN "
            "(SELECT id FROM beneficiaries_household WHERE external_ref LIKE 'BENCHM-%%')"
        )
        cur.execute(
            "DELETE FROM beneficiaries_member WHERE household_id IN "
            "(SELECT id FROM beneficiaries_household WHERE external_ref LIKE 'BENCHM-%%')"
        )
        cur.execute("DELETE FROM beneficiaries_household WHERE external_ref LIKE 'BENCHM-%%'")
        cur.execute(
            "DELETE FROM sponsorship_ledgerentry WHERE transaction_id IN (SELECT id FROM "
            "sponsorship_ledgertransaction WHERE key LIKE 'bench-matching:%%' OR memo LIKE 'bench-matching%%')"
        )
        cur.execute(
            "DELETE FROM sponsorship_ledgertransaction "
            "WHERE key LIKE 'bench-matching:%%' OR memo LIKE 'bench-matching%%'"
        )
        if user is not None:
            cur.execute("DELETE FROM sponsorship_donation WHERE donor_id = %s", [user.pk])
            user.delete()


def run(options, out) -> dict:
    from beneficiaries.models import Household, Level, Locality, Member, MemberStatus, Relation
    from donors.models import Role, User
    from sponsorship.matching import services
    from sponsorship.models import Account, Donation, LedgerEntry, LedgerTransaction
    from sponsorship.services.donations import fund_key, new_reference

    from .limits import copy_rate

    n, m = options["members"], options["gifts"]
    rng = random.Random(5)
    from beneficiaries.localities import localities_are_loaded, localities_load

    if not localities_are_loaded():
        localities_load()
    _cleanup()
    province = Locality.objects.get(scheme="2025", level=Level.PROVINCE, code=42)
    communes = list(Locality.objects.filter(level=Level.COMMUNE, province=province))
    user = User.objects.create_user(BENCH_EMAIL, None, role=Role.DONOR, full_name="benchmark")
    try:
        out.write(f"creating {n:,} members and {m:,} gifts…\n")
        households, sizes, made = [], [], 0
        while made < n:
            size = min(rng.randint(1, 3), n - made)
            households.append(
                Household(
                    locality=rng.choice(communes), external_ref=f"BENCHM-{len(households)}", poverty_class="near_poor"
                )
            )
            sizes.append(size)
            made += size
        Household.objects.bulk_create(households, batch_size=10_000)
        members, k = [], 0
        for hh, size in zip(households, sizes, strict=True):
            for i in range(size):
                k += 1
                members.append(
                    Member(
                        household=hh, locality_id=hh.locality_id, full_name=f"Bench {k}", name_ascii=f"bench {k}",
                        date_of_birth=date(1980, 1, 1), sex="male", personal_id=f"9{k:011d}",
                        relation=Relation.HEAD if i == 0 else Relation.CHILD, status=MemberStatus.APPROVED,
                    )
                )  # fmt: skip
        Member.objects.bulk_create(members, batch_size=10_000)
        key = fund_key()
        # Enough money for about 90 % of the members' donor shares (379,080 VND each).
        per_gift = max(379_080 * n * 9 // 10 // m, 1)
        refs = set()
        while len(refs) < m:
            refs.add(new_reference())
        gifts = Donation.objects.bulk_create(
            [
                Donation(
                    donor=user, method="bank", amount_vnd=per_gift, appearance="anonymous", status="succeeded",
                    reference=r, amount_received_vnd=per_gift, fund_key=key,
                )
                for r in sorted(refs)
            ],
            batch_size=10_000,
        )  # fmt: skip
        with transaction.atomic():
            txs = LedgerTransaction.objects.bulk_create(
                [LedgerTransaction(key=f"bench-matching:{g.pk}", kind="bank_paid", donation=g) for g in gifts],
                batch_size=10_000,
            )
            LedgerEntry.objects.bulk_create(
                [
                    e
                    for t in txs
                    for e in (
                        LedgerEntry(transaction=t, account=Account.BANK_CLEARING, amount=per_gift),
                        LedgerEntry(transaction=t, account=Account.DONOR_FUNDS, fund=key, amount=-per_gift),
                    )
                ],
                batch_size=20_000,
            )
        out.write("matching…\n")
        staged = {}
        real_stage = services.stage_needs

        def timed_stage(*args, **kwargs):
            t0 = time.perf_counter()
            result = real_stage(*args, **kwargs)
            staged["seconds"] = time.perf_counter() - t0
            return result

        services.stage_needs = timed_stage
        try:
            with Stopwatch() as sw:
                result = services.match_province(province_id=province.pk, period_start=PERIOD)
        finally:
            services.stage_needs = real_stage
        out.write("measuring COPY…\n")
        copy = copy_rate(options["copy_rows"], 1)
        allocations = result.allocations
        sql_seconds = max(sw.seconds - staged.get("seconds", 0), 1e-6)
        figures = {
            "members": n,
            "gifts": m,
            "cards_funded": result.cards_funded,
            "allocations": allocations,
            "match_seconds": round(sw.seconds, 3),
            "pricing_seconds": round(staged.get("seconds", 0), 3),
            "allocations_per_s": round(allocations / sw.seconds, 1),
            "allocations_per_s_excl_pricing": round(allocations / sql_seconds, 1),
            "copy_rows_per_s": round(copy, 1),
            "ratio_to_copy": round(allocations / sw.seconds / copy, 4),
            "ratio_to_copy_excl_pricing": round(allocations / sql_seconds / copy, 4),
        }
        figures["goal_met"] = figures["ratio_to_copy"] >= 0.10
        return figures
    finally:
        _cleanup()


def rows(figures: dict) -> list[tuple[str, str]]:
    return [
        ("members / gifts", f"{figures['members']:,} / {figures['gifts']:,}"),
        ("cards funded / allocations", f"{figures['cards_funded']:,} / {figures['allocations']:,}"),
        ("match (s, incl. pricing and commit)", f"{figures['match_seconds']}"),
        ("pricing in Python (s)", f"{figures['pricing_seconds']}"),
        ("allocations/s", f"{figures['allocations_per_s']:,.0f}"),
        ("allocations/s excl. pricing", f"{figures['allocations_per_s_excl_pricing']:,.0f}"),
        ("COPY rows/s", f"{figures['copy_rows_per_s']:,.0f}"),
        ("ratio to COPY (goal ≥ 10 %)", f"{figures['ratio_to_copy']:.2%}"),
        ("ratio excl. pricing", f"{figures['ratio_to_copy_excl_pricing']:.2%}"),
    ]
