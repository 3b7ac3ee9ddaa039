"""Matching: allocations per second of the real matcher, and the ratio to the COPY rate
measured in the same run (goal: at least 10 %).

Creates N approved members in households of 1–3 in one province (Hà Tĩnh's communes;
70 % near-poor households, 30 % household group GD so the ladder is exercised; some members
with a card that lapsed months ago), a yearly target for a third of the communes, and M
cleared gifts with their ledger postings (a share of them restricted to one commune), all
with set-based SQL. Money is about 90 % of the donor shares, so the strict priority prefix
and the pooling of the remainder are part of the run.

Then times `match_province` (candidates, SQL pricing, scoring, pairing, cards, allocations,
ledger, commit) --repeat times, undoing the run's output in between, and reports the median.
After the last run it verifies: no gift over-spent, no card over- or under-funded, no
household split, and `check_invariants()` empty. Everything created is deleted afterwards."""

import statistics
import time
from datetime import date

from django.conf import settings
from django.db import connection, transaction

from .floor import write_floor
from .report import Stopwatch

GOAL = 0.10  # of COPY (issue: matching)
BENCH_EMAIL = "bench-matching@chungtay.invalid"
PERIOD = date(2026, 1, 1)
BENCH_HH = "(SELECT id FROM beneficiaries_household WHERE external_ref LIKE 'BENCHM-%%')"
BENCH_CARDS = f"(SELECT id FROM sponsorship_card WHERE household_id IN {BENCH_HH})"


def add_arguments(parser):
    parser.add_argument("--members", type=int, default=20_000)
    parser.add_argument("--gifts", type=int, default=2_000)
    parser.add_argument("--restricted", type=float, default=0.05, help="share of gifts restricted to a commune")
    parser.add_argument("--repeat", type=int, default=1, help="matching runs; the median is reported")
    parser.add_argument("--copy-rows", type=int, default=500_000)
    parser.add_argument(
        "--max-households", type=int, default=None,
        help="households per run (default CHUNGTAY_MATCHING_MAX_HOUSEHOLDS_PER_RUN); the shard is matched run "
        "after run until a run is not capped, all of it timed",
    )  # fmt: skip


def _undo_runs(cur, run_ids: list[int]) -> None:
    """Remove what matching runs wrote (cards, history, allocations, the runs' ledger
    transactions). By run, not by household: the shard's other waiting members (the demo's)
    are funded by the benchmark's unrestricted gifts too."""
    cur.execute("DROP TABLE IF EXISTS bundo")
    cur.execute(
        "CREATE TEMP TABLE bundo AS SELECT DISTINCT card_id AS id FROM sponsorship_allocation WHERE run_id = ANY(%s)",
        [run_ids],
    )
    cur.execute("DELETE FROM sponsorship_allocation WHERE run_id = ANY(%s)", [run_ids])
    cur.execute("DELETE FROM sponsorship_cardtransition WHERE card_id IN (SELECT id FROM bundo)")
    cur.execute("DELETE FROM sponsorship_card WHERE id IN (SELECT id FROM bundo)")
    cur.execute("DROP TABLE bundo")
    keys = [f"allocation:run:{r}" for r in run_ids]
    cur.execute(
        "DELETE FROM sponsorship_ledgerentry WHERE transaction_id IN "
        "(SELECT id FROM sponsorship_ledgertransaction WHERE key = ANY(%s))",
        [keys],
    )
    cur.execute("DELETE FROM sponsorship_ledgertransaction WHERE key = ANY(%s)", [keys])
    cur.execute("DELETE FROM sponsorship_matchingrun WHERE id = ANY(%s)", [run_ids])


def _cleanup():
    from donors.models import User

    user = User.objects.filter(email=BENCH_EMAIL).first()
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute(
            "SELECT DISTINCT run_id FROM sponsorship_allocation WHERE donation_id IN "
            "(SELECT id FROM sponsorship_donation WHERE donor_id = %s)",
            [user.pk if user else 0],
        )
        _undo_runs(cur, [r for (r,) in cur.fetchall()])
        cur.execute(f"DELETE FROM beneficiaries_member WHERE household_id IN {BENCH_HH}")
        cur.execute("DELETE FROM beneficiaries_household WHERE external_ref LIKE 'BENCHM-%%'")
        cur.execute("DELETE FROM sponsorship_target WHERE source = 'bench-matching'")
        cur.execute(
            "DELETE FROM sponsorship_ledgerentry WHERE transaction_id IN (SELECT id FROM "
            "sponsorship_ledgertransaction WHERE key LIKE 'bench-matching:%%')"
        )
        cur.execute("DELETE FROM sponsorship_ledgertransaction WHERE key LIKE 'bench-matching:%%'")
        if user is not None:
            cur.execute("DELETE FROM sponsorship_donation WHERE donor_id = %s", [user.pk])
            user.delete()
        # The province's published queue was the benchmark's (a million households): it would
        # hold unrestricted money back from other provinces until it went stale. Its next run
        # publishes the real one.
        cur.execute(
            "DELETE FROM sponsorship_matchingdemand WHERE province_id IN (SELECT id FROM beneficiaries_locality "
            "WHERE scheme = '2025' AND level = 'province' AND code = 42)"
        )
    # A million rows deleted: without fresh statistics the next run's planner once chose a
    # nested loop for a join of the cards it wrote (one run took minutes instead of seconds).
    # (VACUUM cannot run in a transaction: the test of this benchmark runs in one.)
    analyze = "ANALYZE" if connection.in_atomic_block else "VACUUM ANALYZE"
    with connection.cursor() as cur:
        for table in (
            "sponsorship_card", "sponsorship_allocation", "sponsorship_ledgerentry", "sponsorship_ledgertransaction",
            "sponsorship_donation", "beneficiaries_member", "beneficiaries_household",
        ):  # fmt: skip
            cur.execute(f"{analyze} {table}")


def _create(cur, *, province, n: int, m: int, restricted: float, donor_id: int, unrestricted_key: str) -> int:
    """Members, targets and gifts in set-based SQL. Returns the total donor share waiting."""
    cur.execute("SELECT setseed(0.5)")
    # Households of 1–3 members until n members; ids reserved from the sequence.
    cur.execute(
        "CREATE TEMP TABLE bh AS SELECT i, size, SUM(size) OVER (ORDER BY i) AS upto FROM "
        "(SELECT i, 1 + floor(random() * 3)::int AS size FROM generate_series(1, %s) i) s",
        [n],
    )
    cur.execute("DELETE FROM bh WHERE upto - size >= %s", [n])
    cur.execute("UPDATE bh SET size = size - (upto - %s) WHERE upto > %s", [n, n])
    cur.execute(
        "CREATE TEMP TABLE bc AS SELECT row_number() OVER (ORDER BY id) AS k, id FROM beneficiaries_locality "
        "WHERE level = 'commune' AND province_id = %s",
        [province.pk],
    )
    cur.execute("SELECT count(*) FROM bc")
    communes = cur.fetchone()[0]
    cur.execute(
        "ALTER TABLE bh ADD COLUMN hid bigint, ADD COLUMN loc bigint, ADD COLUMN pc text; "
        "UPDATE bh SET hid = nextval(pg_get_serial_sequence('beneficiaries_household', 'id')), "
        f"loc = (SELECT id FROM bc WHERE k = 1 + (bh.i::bigint * 7919) % {communes}), "
        "pc = CASE WHEN random() < 0.7 THEN 'near_poor' ELSE 'none' END"
    )
    cur.execute(
        "INSERT INTO beneficiaries_household (id, locality_id, external_ref, address, phone, poverty_class, "
        "certificate_number, is_poor_commune, is_ethnic_minority, is_island_commune, created_at, updated_at) "
        "SELECT hid, loc, 'BENCHM-' || i, '', '', pc, '', false, false, false, now(), now() FROM bh"
    )
    cur.execute(
        "INSERT INTO beneficiaries_member (household_id, locality_id, full_name, name_ascii, date_of_birth, sex, "
        "personal_id, si_code, ethnicity, relation, is_student, card_group, card_valid_until, status, "
        "is_possible_duplicate, created_at, updated_at) "
        "SELECT hid, loc, 'Bench ' || hid || '-' || j, 'bench ' || hid || '-' || j, "
        "  date '1960-01-01' + (random() * 20000)::int, 'male', '9' || lpad((row_number() OVER ())::text, 11, '0'), "
        "  '', '', CASE WHEN j = 1 THEN 'head' ELSE 'child' END, false, '', "
        "  CASE WHEN random() < 0.2 THEN date '2025-01-01' + (random() * 300)::int END, 'approved', false, "
        "  now() - make_interval(days => (random() * 90)::int), now() "
        "FROM bh, generate_series(1, bh.size) j"
    )
    # Yearly HI targets for a third of the communes, some further behind than others.
    cur.execute(
        "INSERT INTO sponsorship_target (locality_id, year, type, number, baseline, source) "
        "SELECT id, %s, 'hi', 10000, (5000 + random() * 5000)::int, 'bench-matching' FROM bc WHERE k %% 3 = 0 "
        "ON CONFLICT DO NOTHING",
        [PERIOD.year],
    )
    cur.execute("ANALYZE beneficiaries_household; ANALYZE beneficiaries_member")
    from sponsorship.matching.pricing_sql import create_candidates, price_sql

    create_candidates(cur, select_sql="SELECT id FROM beneficiaries_member WHERE household_id IN (SELECT hid FROM bh)")
    sql, params = price_sql(product="hi", months=12, on_date=PERIOD)
    cur.execute(f"SELECT COALESCE(SUM(donor_share), 0) FROM ({sql}) p(member_id, household_id, eligible, reason, "
                "grp, premium, state_share, province_share, donor_share, ladder_position, schedule_id, rule_ids) "
                "WHERE eligible", params)  # fmt: skip
    need = int(cur.fetchone()[0])
    per_gift = max(need * 9 // 10 // m, 1)
    # Gifts: most unrestricted, `restricted` of them for one commune; paid over the last days.
    cur.execute(
        "CREATE TEMP TABLE bg AS SELECT i, nextval(pg_get_serial_sequence('sponsorship_donation', 'id')) AS did, "
        "nextval(pg_get_serial_sequence('sponsorship_ledgertransaction', 'id')) AS tid, "
        f"CASE WHEN random() < %s THEN (SELECT id FROM bc WHERE k = 1 + (i * 31) %% {communes}) END AS loc "
        "FROM generate_series(1, %s) i",
        [restricted, m],
    )
    cur.execute(
        "INSERT INTO sponsorship_donation (id, public_id, donor_id, method, amount_vnd, locality_id, product, "
        "beneficiary_group, campaign, appearance, status, fund_key, idempotency_key, reference, "
        "amount_received_vnd, amount_refunded_vnd, fee_vnd, stripe_customer_id, stripe_setup_intent_id, "
        "failure_message, has_redirect_consent, created_at, paid_at) "
        "SELECT did, gen_random_uuid(), %s, 'bank', %s, loc, '', '', '', 'anonymous', 'succeeded', "
        "CASE WHEN loc IS NULL THEN %s ELSE 'loc=' || loc || ';prod=*;grp=*;camp=*' END, '', 'BM' || did, "
        "%s, 0, 0, '', '', '', false, now(), now() - make_interval(secs => (%s - i)) FROM bg",
        [donor_id, per_gift, unrestricted_key, per_gift, m],
    )
    cur.execute(
        "INSERT INTO sponsorship_ledgertransaction (id, key, kind, memo, donation_id, created_at) "
        "SELECT tid, 'bench-matching:' || did, 'bank_paid', 'bench-matching', did, now() FROM bg"
    )
    cur.execute(
        "INSERT INTO sponsorship_ledgerentry (transaction_id, account, fund, amount) "
        "SELECT tid, 'bank_clearing', '', %s FROM bg UNION ALL "
        "SELECT tid, 'donor_funds', CASE WHEN loc IS NULL THEN %s ELSE 'loc=' || loc || ';prod=*;grp=*;camp=*' END, "
        "-%s FROM bg",
        [per_gift, unrestricted_key, per_gift],
    )
    cur.execute("DROP TABLE bh, bc, bg")
    cur.execute("ANALYZE sponsorship_donation; ANALYZE sponsorship_ledgerentry; ANALYZE sponsorship_ledgertransaction")
    return need


PHASES = (
    ("INSERT INTO mfund", "funds"),
    ("UPDATE mfund", "funds"),
    ("WITH locked AS", "funds"),
    ("INSERT INTO mcand", "candidates"),
    ("INSERT INTO mneed", "price_and_score"),
    ("WITH d AS", "pair"),
    ("WITH cards AS", "write_cards"),
    ("INSERT INTO sponsorship_allocation", "write_allocations"),
    ("WITH ref AS MATERIALIZED", "verify_foreign_keys"),
)


def _phase_timer(phases: dict):
    """Sum the time of the matcher's statements per phase (the rest: funds, ledger, commit with
    its deferred foreign-key and balance checks)."""

    def wrapper(execute, sql, params, many, context):
        t0 = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            head = sql.lstrip()
            name = next((n for prefix, n in PHASES if head.startswith(prefix)), "other_statements")
            phases[name] = phases.get(name, 0.0) + time.perf_counter() - t0

    return wrapper


VERIFY_SQL = {
    # A gift never gives more than it received.
    "overspent_gifts": "SELECT count(*) FROM (SELECT a.donation_id, SUM(a.amount_vnd) s FROM sponsorship_allocation a "
    "JOIN sponsorship_donation d ON d.id = a.donation_id WHERE d.donor_id = %(donor)s GROUP BY a.donation_id) x "
    "JOIN sponsorship_donation d ON d.id = x.donation_id WHERE x.s > d.amount_received_vnd",
    # A funded card is funded exactly (never over, never partly).
    "misfunded_cards": f"SELECT count(*) FROM sponsorship_card c LEFT JOIN (SELECT card_id, SUM(amount_vnd) s "
    f"FROM sponsorship_allocation GROUP BY card_id) a ON a.card_id = c.id WHERE c.household_id IN {BENCH_HH} "
    "AND COALESCE(a.s, 0) <> c.donor_share_vnd",
    # Whole households: no household with some waiting members funded and others not.
    "split_households": f"SELECT count(*) FROM (SELECT m.household_id FROM beneficiaries_member m LEFT JOIN "
    "sponsorship_card c ON c.member_id = m.id WHERE m.household_id IN (SELECT household_id FROM sponsorship_card "
    f"WHERE household_id IN {BENCH_HH}) AND (m.card_valid_until IS NULL OR m.card_valid_until < %(period)s) "
    "GROUP BY m.household_id HAVING bool_or(c.id IS NULL) AND bool_or(c.id IS NOT NULL)) x",
    # A commune-restricted gift funds only its commune.
    "restriction_breaks": "SELECT count(*) FROM sponsorship_allocation a JOIN sponsorship_donation d ON "
    "d.id = a.donation_id JOIN sponsorship_card c ON c.id = a.card_id WHERE d.donor_id = %(donor)s "
    "AND d.locality_id IS NOT NULL AND d.locality_id <> c.locality_id",
}


def run(options, out) -> dict:
    from beneficiaries.localities import localities_are_loaded, localities_load
    from beneficiaries.models import Level, Locality
    from donors.models import Role, User
    from sponsorship.matching import services
    from sponsorship.services.donations import fund_key
    from sponsorship.services.ledger import check_invariants

    from .limits import copy_rate

    n, m = options["members"], options["gifts"]
    if not localities_are_loaded():
        localities_load()
    _cleanup()
    province = Locality.objects.get(scheme="2025", level=Level.PROVINCE, code=42)
    user = User.objects.create_user(BENCH_EMAIL, None, role=Role.DONOR, full_name="benchmark")
    try:
        out.write(f"creating {n:,} members and {m:,} gifts (set-based)…\n")
        t0 = time.perf_counter()
        with transaction.atomic(), connection.cursor() as cur:
            need = _create(
                cur, province=province, n=n, m=m, restricted=options["restricted"], donor_id=user.pk,
                unrestricted_key=fund_key(),
            )  # fmt: skip
        out.write(f"  created in {time.perf_counter() - t0:.1f} s; donor shares waiting {need:,} VND\n")
        runs, samples = [], []
        for i in range(options["repeat"]):
            if runs:
                with transaction.atomic(), connection.cursor() as cur:
                    _undo_runs(cur, [r.pk for r in runs])
                with connection.cursor() as cur:
                    cur.execute("VACUUM ANALYZE sponsorship_card")
            out.write(f"matching (run {i + 1}/{options['repeat']})…\n")
            phases: dict[str, float] = {}
            shard = []
            with Stopwatch() as sw, connection.execute_wrapper(_phase_timer(phases)):
                # The whole shard: run after run (one transaction each) until one is not capped,
                # as the task re-queues itself.
                while True:
                    result = services.match_province(
                        province_id=province.pk, period_start=PERIOD, max_households=options["max_households"]
                    )
                    shard.append(result)
                    if not result.capped:
                        break
            phases["commit_and_rest"] = sw.seconds - sum(phases.values())
            runs += shard
            total = {
                k: sum(getattr(r, k) for r in shard) for k in ("allocations", "cards_funded", "money_allocated_vnd")
            }
            samples.append((total, sw.seconds, shard))
            out.write(
                f"  {total['allocations']:,} allocations in {sw.seconds:.2f} s ({len(shard)} runs: "
                + ", ".join(f"{r.cards_funded:,} cards {r.duration_ms / 1000:.1f} s" for r in shard)
                + ")\n"
            )
        out.write("measuring COPY (median of 3)…\n")
        copy = copy_rate(options["copy_rows"], 3)
        out.write("measuring the write floor (median of 3)…\n")
        # The last shard's cards and allocations written into empty copies of their tables:
        # what the engine needs for the writes alone (floor.py).
        run_ids = [r.pk for r in samples[-1][2]]
        floor = write_floor(
            [
                ("sponsorship_card", "id IN (SELECT card_id FROM sponsorship_allocation WHERE run_id = ANY(%(runs)s))",
                 {"runs": run_ids}),
                ("sponsorship_allocation", "run_id = ANY(%(runs)s)", {"runs": run_ids}),
            ]
        )  # fmt: skip
        out.write("verifying…\n")
        checks = {}
        with connection.cursor() as cur:
            for name, sql in VERIFY_SQL.items():
                cur.execute(sql, {"donor": user.pk, "period": PERIOD})
                checks[name] = cur.fetchone()[0]
        problems = check_invariants()
        rates = [t["allocations"] / s for t, s, _ in samples]
        median_rate = statistics.median(rates)
        median_seconds = statistics.median(s for _, s, _ in samples)
        last, last_shard = samples[-1][0], samples[-1][2]
        figures = {
            "members": n,
            "gifts": m,
            "restricted_share": options["restricted"],
            "repeat": options["repeat"],
            "runs_per_shard": len(last_shard),
            "max_households_per_run": options["max_households"] or settings.CHUNGTAY_MATCHING_MAX_HOUSEHOLDS_PER_RUN,
            "cards_funded": last["cards_funded"],
            "allocations": last["allocations"],
            "money_in_vnd": last_shard[0].money_in_vnd,
            "money_allocated_vnd": last["money_allocated_vnd"],
            "money_left_vnd": last_shard[-1].money_left_vnd,
            "match_seconds": round(median_seconds, 3),
            "match_seconds_samples": [round(s, 3) for _, s, _ in samples],
            "phase_seconds_last_run": {k: round(v, 3) for k, v in phases.items()},
            "allocations_per_s": round(median_rate, 1),
            "copy_rows_per_s": round(copy, 1),
            "ratio_to_copy": round(median_rate / copy, 4),
            "write_floor_s": round(floor["seconds"], 3),
            "write_floor_s_samples": floor["samples"],
            "write_floor_rows": floor["rows"],
            "write_floor_ratio_to_copy": round(last["allocations"] / floor["seconds"] / copy, 4),
            "seconds_at_goal": round(last["allocations"] / (GOAL * copy), 3),
            **checks,
            "ledger_invariants_broken": len(problems),
        }
        figures["verified"] = not any(checks.values()) and not problems
        figures["goal_met"] = figures["ratio_to_copy"] >= GOAL and figures["verified"]
        return figures
    finally:
        _cleanup()


def rows(figures: dict) -> list[tuple[str, str]]:
    return [
        ("members / gifts", f"{figures['members']:,} / {figures['gifts']:,}"),
        ("runs per shard (households per run ≤)",
         f"{figures['runs_per_shard']} ({figures['max_households_per_run']:,})"),
        ("cards funded / allocations", f"{figures['cards_funded']:,} / {figures['allocations']:,}"),
        ("money in / allocated / left (VND)",
         f"{figures['money_in_vnd']:,} / {figures['money_allocated_vnd']:,} / {figures['money_left_vnd']:,}"),
        (f"match (s, median of {figures['repeat']}, all in)", f"{figures['match_seconds']}"),
        ("allocations/s (median)", f"{figures['allocations_per_s']:,.0f}"),
        ("COPY rows/s (same run, median)", f"{figures['copy_rows_per_s']:,.0f}"),
        ("ratio to COPY (goal ≥ 10 %)", f"{figures['ratio_to_copy']:.2%}"),
        ("writing the cards + allocations alone (empty copies of their tables, s, median of 3)",
         f"{figures['write_floor_s']} of {figures['write_floor_s_samples']}"),
        ("  as a share of COPY, if nothing else took time (goal ≥ 10 %)",
         f"{figures['write_floor_ratio_to_copy']:.2%}"),
        ("  the whole shard at 10 % of COPY would take (s)", f"{figures['seconds_at_goal']}"),
        ("over-spent gifts / mis-funded cards", f"{figures['overspent_gifts']} / {figures['misfunded_cards']}"),
        ("split households / restriction breaks", f"{figures['split_households']} / {figures['restriction_breaks']}"),
        ("ledger invariants broken", f"{figures['ledger_invariants_broken']}"),
        *[(f"  phase: {k} (s)", f"{v}") for k, v in figures["phase_seconds_last_run"].items()],
    ]  # fmt: skip
