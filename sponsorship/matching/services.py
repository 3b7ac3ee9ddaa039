"""The set-based matcher, one province shard per transaction.

1. Claim the shard: pg_try_advisory_xact_lock(MATCHING, province). Busy → skip (another worker
   is matching it; beat comes back in 30 s).
2. Needs: approved members of the province without a live card for (product, period), priced
   set-based in SQL from the versioned pricing tables (pricing_sql.py, proven equal to the
   registry's `price_household`) and scored per household (target gaps of its commune and
   province, months uncovered, poverty class, waiting time) in ONE statement into a temp table.
3. Funds: cleared gifts whose restriction can reach the province, row-locked FOR UPDATE SKIP
   LOCKED (a gift being matched by another province's worker is simply left for later); what a
   gift has left = its donor_funds credits in the ledger − its allocations.
4. For each restriction class (most specific first) ONE statement pairs the class's gifts
   (ordered by payment time) with the households it may fund (ordered by score) by the overlap of
   their running totals, cut into segments at every boundary of either (PAIR_SQL). Only
   households whose whole donor share fits are funded (strict priority prefix); smaller money
   stays pooled.
   A run funds at most CHUNGTAY_MATCHING_MAX_HOUSEHOLDS_PER_RUN households (the best-scored
   of those the classes' money covers, a prefix of each class's order); a run stopped at that
   cap is `capped` and the task queues the next one, so the gifts' row locks are held for one
   bounded transaction and the strict order carries over from run to run.
5. Cards (funded) and allocations (with score, rule version, components), written without
   PostgreSQL's per-row foreign-key triggers and verified set-based (config/bulk_fk.py), and
   one ledger transaction (donor_funds[fund] → allocated_to_cards[fund]), in the same
   transaction. The initial `funded` state has no history row: Card.history derives it from
   the card (funded_at, its allocations' run).
"""

import logging
import time
from datetime import date
from decimal import Decimal

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from beneficiaries.models import Member, MemberStatus

from ..card_models import LIVE_STATUSES
from ..models import Account
from ..services.ledger import credit, debit, ledger_post
from . import national
from .models import MatchingRule, MatchingRun, RunStatus

logger = logging.getLogger("sponsorship.matching")

LOCK_NAMESPACE = 5005  # pg advisory lock (namespace, province id)
# Sponsorship product codes (gifts, cards) → the registry's pricing codes.
PRICING_PRODUCT = {"hi_household": "hi", "si_voluntary": "vsi"}
PAID = ("succeeded", "partially_paid", "partially_refunded", "refunded", "disputed")


def current_period_start(today: date | None = None) -> date:
    """Cards bought now start on the first day of next month."""
    today = today or timezone.localdate()
    return date(today.year + (today.month == 12), today.month % 12 + 1, 1)


def active_rule() -> MatchingRule:
    rule = MatchingRule.objects.filter(is_active=True).order_by("-version").first()
    if rule is None:
        rule, _ = MatchingRule.objects.get_or_create(version=1, defaults={"note": "default"})
    return rule


def _months_uncovered(member: Member, period_start: date) -> int:
    until = member.card_valid_until
    if until is None:
        return 12
    months = (period_start.year - until.year) * 12 + period_start.month - until.month
    return max(0, min(12, months))


def target_gaps(*, year: int, product: str) -> dict[int, Decimal]:
    """2025 locality id (commune or province) → how far it is behind its yearly target, in
    percent of the target: 100 × max(target − baseline − sponsored new enrollments, 0) / target.
    Targets come from sponsorship/enrollment (legacy-scheme targets mapped to 2025 units), the
    enrollments from its rollups. A locality without a target is not behind anything (0)."""
    from django.db.models import Sum

    from ..enrollment.models import PRODUCT_TYPE, EnrollmentRollup
    from ..enrollment.targets import targets_in_current_scheme

    type_ = PRODUCT_TYPE.get(product, product)
    targets = targets_in_current_scheme(year=year, type=type_)
    if not targets:
        return {}
    new = dict(
        EnrollmentRollup.objects.filter(year=year, type=type_, locality_id__in=list(targets))
        .values("locality_id")
        .annotate(n=Sum("new_enrollments"))
        .values_list("locality_id", "n")
    )
    gaps = {}
    for loc, t in targets.items():
        if t["number"] > 0:
            behind = max(t["number"] - t["baseline"] - (new.get(loc) or 0), 0)
            gaps[loc] = (Decimal(100 * behind) / t["number"]).quantize(Decimal("0.01"))
    return gaps


def score_household(
    *,
    rule: MatchingRule,
    poverty_class: str,
    members,
    period_start: date,
    now=None,
    commune_gap: Decimal = Decimal(0),
    province_gap: Decimal = Decimal(0),
) -> tuple:
    """(score, components) of a household: the explanation stored on each allocation. The
    matcher computes the same formula in SQL (STAGE_SQL); this is the readable reference."""
    now = now or timezone.now()
    months = max(_months_uncovered(m, period_start) for m in members)
    waiting = max((now - min(m.created_at for m in members)).days, 0)
    poverty = Decimal(str((rule.poverty_weights or {}).get(poverty_class, 0)))
    score = (
        rule.gap_weight * commune_gap
        + rule.province_gap_weight * province_gap
        + rule.months_weight * months
        + poverty
        + rule.waiting_weight * waiting
    )
    components = {
        "gap": float(commune_gap),
        "province_gap": float(province_gap),
        "months_uncovered": months,
        "poverty_class": poverty_class,
        "waiting_days": waiting,
    }
    return score.quantize(Decimal("0.001")), components


NEED_COLUMNS = (
    "household_id, member_id, locality_id, grp, premium, state_share, province_share, donor_share, "
    "ladder_position, schedule_id, rule_ids, score, components, hrank"
)


def _create_temp_tables(cur) -> None:
    cur.execute("DROP TABLE IF EXISTS mneed, mfund, mpair, mgap, mcap, mcard, mgone")
    cur.execute(
        "CREATE TEMP TABLE mneed (household_id bigint, member_id bigint, locality_id bigint, grp text, "
        "premium bigint, state_share bigint, province_share bigint, donor_share bigint, ladder_position int, "
        "schedule_id bigint, rule_ids text, score numeric, components text, hrank bigint, "
        "funded boolean DEFAULT false) "
        "ON COMMIT DROP"
    )
    cur.execute(
        "CREATE TEMP TABLE mfund (donation_id bigint PRIMARY KEY, locality_id bigint, loc_level text, "
        "product text, grp text, fund text, paid_at timestamptz, avail bigint) ON COMMIT DROP"
    )
    cur.execute(
        "CREATE TEMP TABLE mpair (donation_id bigint, member_id bigint, fund text, amount bigint) ON COMMIT DROP"
    )
    cur.execute("CREATE TEMP TABLE mgap (locality_id bigint PRIMARY KEY, gap numeric) ON COMMIT DROP")
    cur.execute("CREATE TEMP TABLE mcap (households bigint) ON COMMIT DROP")
    # Gifts staged with nothing left (kept by a capped run for the rest of its pass: mspent).
    cur.execute("CREATE TEMP TABLE mgone (donation_id bigint) ON COMMIT DROP")
    # The cards this run wrote, as written (RETURNING): the allocations join them, and their
    # foreign keys are verified from them (config/bulk_fk.py).
    cur.execute(
        "CREATE TEMP TABLE mcard (id bigint, member_id bigint, household_id bigint, locality_id bigint, "
        "renewal_of_id bigint) ON COMMIT DROP"
    )


# The province's waiting members (approved, no live card for this product and period), with
# what scoring needs of them: one scan of the members, which pricing and scoring then read
# instead of the member table (pricing_sql reads only mcand.member_id).
CANDIDATES_SQL = """
SELECT mb.id, mb.household_id, mb.locality_id, mb.card_valid_until, mb.created_at
FROM beneficiaries_member mb JOIN beneficiaries_locality l ON l.id = mb.locality_id
WHERE l.province_id = %(province)s AND mb.status = 'approved'
  AND NOT EXISTS (SELECT 1 FROM sponsorship_card c WHERE c.member_id = mb.id AND c.product = %(product)s
                  AND c.period_start = %(period)s AND c.status = ANY(%(live)s))
"""

# Price (pricing_sql) and score every candidate in one statement. The score is per household
# over its waiting members (the formula of score_household / MatchingRule).
STAGE_SQL = """
INSERT INTO mneed ({columns})
WITH price ({price_columns}) AS ({price}),
hh AS (
    SELECT mb.household_id, h.poverty_class, h.locality_id, hl.province_id,
           MAX(CASE WHEN mb.card_valid_until IS NULL THEN 12 ELSE GREATEST(0, LEAST(12,
               (EXTRACT(YEAR FROM %(period)s::date) - EXTRACT(YEAR FROM mb.card_valid_until)) * 12
               + EXTRACT(MONTH FROM %(period)s::date) - EXTRACT(MONTH FROM mb.card_valid_until))) END)::int AS months,
           GREATEST(FLOOR(EXTRACT(EPOCH FROM (%(now)s - MIN(mb.created_at))) / 86400), 0)::int AS waiting
    FROM mcand mb JOIN beneficiaries_household h ON h.id = mb.household_id
    JOIN beneficiaries_locality hl ON hl.id = h.locality_id
    GROUP BY mb.household_id, h.poverty_class, h.locality_id, hl.province_id
), components AS (
    SELECT hh.*, COALESCE(cg.gap, 0) AS cgap, COALESCE(pg.gap, 0) AS pgap,
           COALESCE((%(poverty)s::jsonb ->> hh.poverty_class)::numeric, 0) AS poverty
    FROM hh LEFT JOIN mgap cg ON cg.locality_id = hh.locality_id LEFT JOIN mgap pg ON pg.locality_id = hh.province_id
), scored AS (
    SELECT c.*, round(%(w_gap)s * c.cgap + %(w_pgap)s * c.pgap + %(w_months)s * c.months + c.poverty
                      + %(w_wait)s * c.waiting, 3) AS score
    FROM components c
), ranked AS (
    -- The household's place in the priority order (score, then household id), as one integer:
    -- the pairing sorts by it, and a run's cap is a bound on it.
    SELECT s.*, row_number() OVER (ORDER BY s.score DESC, s.household_id) AS hrank FROM scored s
)
SELECT p.household_id, p.member_id, mb.locality_id, p.grp, p.premium, p.state_share, p.province_share,
       p.donor_share, p.ladder_position, p.schedule_id, p.rule_ids, s.score,
       json_build_object('gap', s.cgap, 'province_gap', s.pgap, 'months_uncovered', s.months,
                         'poverty_class', s.poverty_class, 'waiting_days', s.waiting)::text,
       s.hrank
FROM price p JOIN ranked s USING (household_id) JOIN mcand mb ON mb.member_id = p.member_id
WHERE p.eligible AND p.donor_share > 0
"""


def stage_needs(cur, *, province_id: int, product: str, months: int, period_start: date, rule: MatchingRule) -> int:
    """Price and score the province's waiting members into mneed, set-based. Returns members staged."""
    import json

    from .pricing_sql import PRICE_COLUMNS, price_sql

    cur.execute("DROP TABLE IF EXISTS mcand")
    cur.execute(
        "CREATE TEMP TABLE mcand (member_id bigint, household_id bigint, locality_id bigint, card_valid_until date, "
        "created_at timestamptz) ON COMMIT DROP"
    )
    cur.execute(
        f"INSERT INTO mcand {CANDIDATES_SQL}",
        {"province": province_id, "product": product, "period": period_start, "live": list(LIVE_STATUSES)},
    )
    cur.execute("ANALYZE mcand")
    gaps = target_gaps(year=period_start.year, product=product)
    if gaps:
        cur.execute("INSERT INTO mgap (locality_id, gap) SELECT * FROM unnest(%s::bigint[], %s::numeric[])",
                    [list(gaps), list(gaps.values())])  # fmt: skip
    sql, params = price_sql(product=PRICING_PRODUCT.get(product, product), months=months, on_date=period_start)
    cur.execute(
        STAGE_SQL.format(columns=NEED_COLUMNS, price=sql, price_columns=PRICE_COLUMNS),
        {
            **params,
            "period": period_start,
            "now": timezone.now(),
            "poverty": json.dumps(rule.poverty_weights or {}),
            "w_gap": rule.gap_weight,
            "w_pgap": rule.province_gap_weight,
            "w_months": rule.months_weight,
            "w_wait": rule.waiting_weight,
        },
    )
    staged = cur.rowcount
    cur.execute("CREATE INDEX ON mneed (locality_id)")
    cur.execute("ANALYZE mneed")
    return staged


# A capped run keeps the rest of its priced and scored needs for the next run of the same
# shard on the same connection (the task re-queued by the run, or the benchmark's loop): a
# session temp table `mstage` that outlives the transaction, keyed in `mstage_key`. Pricing a
# shard is most of a run's reading; without this every run of a million-member shard would
# price everything again to fund its 50,000 households. The next run uses it only if nothing
# else matched the shard in between (no other run recorded since) and it is recent; members no
# longer approved are dropped, the rest of the run (exclusions, holds, pairing) is as usual.
# A run that is not capped drops it; a worker that picks up the re-queued task on another
# connection simply prices again.
#
# A continued run does not copy the queue: mstage itself becomes the run's mneed (renamed for
# the transaction, so a failed run rolls back to the queue as it was) and goes back to being
# mstage without its funded rows. Copying it, indexing and analysing the copy took ≈1.5 s per
# run at a million members. The run's deletions of members it does not fund (no longer
# approved, excluded, held for others) are for this run only, as with the copy: the trigger
# keeps those rows in mhidden and keep_pass puts them back, so the queue a run leaves is always
# the previous one less what was funded.
PASS_MAX_AGE_SECONDS = 600


def _pass_key(*, province_id: int, product: str, period_start: date, rule: MatchingRule) -> list:
    return [province_id, product, period_start, rule.version]


def pass_continues(cur, *, run: MatchingRun, key: list) -> bool:
    """Whether this run goes on with the shard's pass kept on this connection (a stale one is ended)."""
    cur.execute("SELECT to_regclass('pg_temp.mstage_key') IS NOT NULL")
    if not cur.fetchone()[0]:
        return False
    cur.execute(
        "SELECT last_run_id FROM mstage_key WHERE province_id = %s AND product = %s AND period = %s "
        "AND rule_version = %s AND staged_at > now() - make_interval(secs => %s)",
        [*key, PASS_MAX_AGE_SECONDS],
    )
    row = cur.fetchone()
    if row is None or (
        MatchingRun.objects.filter(province_id=run.province_id, pk__gt=row[0]).exclude(pk=run.pk).exists()
    ):
        end_pass(cur)
        return False
    return True


def restage_needs_of_pass(cur) -> int:
    """The pass's queue becomes mneed, less members no longer approved (or gone). Returns members staged."""
    cur.execute("DROP TABLE mneed")
    cur.execute("ALTER TABLE mstage RENAME TO mneed")
    cur.execute(
        "DELETE FROM mneed n WHERE NOT EXISTS (SELECT 1 FROM beneficiaries_member mb "
        "WHERE mb.id = n.member_id AND mb.status = 'approved')"
    )
    dropped = cur.rowcount
    cur.execute("SELECT queued FROM mstage_key")
    return cur.fetchone()[0] - dropped


def keep_pass(cur, *, run: MatchingRun, key: list, continued: bool) -> None:
    """After a capped run: what it did not fund waits in mstage for the next run."""
    if continued:
        cur.execute("DELETE FROM mneed WHERE funded")
        funded = cur.rowcount
        cur.execute(f"WITH h AS (DELETE FROM mhidden RETURNING *) INSERT INTO mneed ({NEED_COLUMNS}, funded) "
                    f"SELECT {NEED_COLUMNS}, funded FROM h")  # fmt: skip
        cur.execute("ALTER TABLE mneed RENAME TO mstage")
        cur.execute(SPENT_SQL)
        cur.execute("UPDATE mstage_key SET last_run_id = %s, queued = queued - %s", [run.pk, funded])
        return
    end_pass(cur)
    cur.execute("CREATE TEMP TABLE mstage (LIKE mneed INCLUDING DEFAULTS)")
    cur.execute(f"INSERT INTO mstage ({NEED_COLUMNS}) SELECT {NEED_COLUMNS} FROM mneed WHERE NOT funded")
    queued = cur.rowcount
    cur.execute("CREATE INDEX ON mstage (locality_id)")
    cur.execute("ANALYZE mstage")
    # Funded rows are deleted by keep_pass; any other deletion is the run's own (see above).
    cur.execute("CREATE TEMP TABLE mhidden (LIKE mstage)")
    cur.execute(
        "CREATE FUNCTION pg_temp.mstage_hidden() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN INSERT INTO mhidden SELECT (OLD).*; RETURN NULL; END $$"
    )
    cur.execute(
        "CREATE TRIGGER mstage_hidden AFTER DELETE ON mstage FOR EACH ROW WHEN (NOT OLD.funded) "
        "EXECUTE FUNCTION pg_temp.mstage_hidden()"
    )
    cur.execute("CREATE TEMP TABLE mspent (donation_id bigint PRIMARY KEY)")
    cur.execute(SPENT_SQL)
    cur.execute(
        "CREATE TEMP TABLE mstage_key (province_id bigint, product text, period date, rule_version int, "
        "last_run_id bigint, staged_at timestamptz, queued bigint)"
    )
    cur.execute("INSERT INTO mstage_key VALUES (%s, %s, %s, %s, %s, now(), %s)", [*key, run.pk, queued])


# The gifts this run left with nothing (or had nothing when staged): the rest of the pass does
# not stage or lock them.
SPENT_SQL = (
    "INSERT INTO mspent SELECT donation_id FROM mgone UNION SELECT donation_id FROM mfund WHERE avail <= 0 "
    "ON CONFLICT DO NOTHING"
)


def end_pass(cur) -> None:
    cur.execute("DROP TABLE IF EXISTS mstage, mstage_key, mhidden, mspent")
    cur.execute("DROP FUNCTION IF EXISTS pg_temp.mstage_hidden()")


# What each staged gift has left: its own donor_funds credits in the ledger − its allocations,
# one grouped sum per side (hash joins for a shard's 100,000 gifts; a correlated subquery per
# gift took seconds per run at that size, and a capped shard stages its gifts every run).
AVAIL_SQL = """
UPDATE mfund f SET avail = COALESCE(l.s, 0) - COALESCE(a.s, 0)
FROM mfund f2
LEFT JOIN (SELECT t.donation_id, -SUM(e.amount) AS s FROM sponsorship_ledgerentry e
           JOIN sponsorship_ledgertransaction t ON t.id = e.transaction_id
           WHERE e.account = 'donor_funds' AND t.donation_id IN (SELECT donation_id FROM mfund)
           GROUP BY t.donation_id) l ON l.donation_id = f2.donation_id
LEFT JOIN (SELECT donation_id, SUM(amount_vnd) AS s FROM sponsorship_allocation
           WHERE donation_id IN (SELECT donation_id FROM mfund) GROUP BY donation_id) a
       ON a.donation_id = f2.donation_id
WHERE f2.donation_id = f.donation_id
"""


def stage_funds(cur, *, province_id: int, continued: bool = False) -> int:
    """The gifts that can reach this province and have money left, row-locked (SKIP LOCKED:
    a gift another worker is using is left for later), with what each has left.

    What is left is read once without locks, so that gifts already spent are not locked (a
    row lock writes the row), then again under the lock, which is what counts. A run that goes
    on with its pass leaves out instead the gifts the pass found spent (mspent) and reads once:
    a gift spent since by another province's run is locked for nothing, and one that got money
    back meanwhile waits for the pass to end, as a gift skipped because it was locked does."""
    cur.execute(
        "INSERT INTO mfund (donation_id, locality_id, loc_level, product, grp, fund, paid_at) "
        "SELECT d.id, d.locality_id, l.level, d.product, d.beneficiary_group, d.fund_key, d.paid_at "
        "FROM sponsorship_donation d LEFT JOIN beneficiaries_locality l ON l.id = d.locality_id "
        "WHERE d.status = ANY(%s) AND (d.locality_id IS NULL OR l.province_id = %s)"
        + (" AND NOT EXISTS (SELECT 1 FROM mspent s WHERE s.donation_id = d.id)" if continued else ""),
        [list(PAID), province_id],
    )
    cur.execute("ANALYZE mfund")
    if not continued:
        cur.execute(AVAIL_SQL)
        cur.execute(GONE_SQL)
    cur.execute(
        "WITH locked AS (SELECT d.id FROM sponsorship_donation d WHERE d.id IN (SELECT donation_id FROM mfund) "
        "  AND d.status = ANY(%s) FOR UPDATE OF d SKIP LOCKED) "
        "DELETE FROM mfund WHERE donation_id NOT IN (SELECT id FROM locked)",
        [list(PAID)],
    )
    cur.execute(AVAIL_SQL)
    cur.execute(GONE_SQL)
    cur.execute("SELECT COALESCE(SUM(avail), 0) FROM mfund")
    return cur.fetchone()[0]


GONE_SQL = (
    "WITH gone AS (DELETE FROM mfund WHERE avail <= 0 RETURNING donation_id) "
    "INSERT INTO mgone SELECT donation_id FROM gone"
)


# Pair restriction classes' gifts with the households they may fund, in one statement per
# batch of classes. Within a class (`cls`: the commune of commune-restricted money, else 0), the
# gifts in payment order and the chosen members in priority order each cover an interval of one
# money line ((running total − amount, running total]). Every boundary of either kind cuts the
# line into segments that belong to exactly one gift and one member: the owner of a segment is
# the first gift (member) whose interval ends at or after it, found with a running count over
# the boundaries taken from the top. Summing segments per (gift, member) gives each allocation:
# a few sorts of (members + gifts) rows instead of a range join. All communes' classes with the
# same (product, group) are disjoint in needs, so they run together, partitioned by commune.
PAIR_SQL = """
WITH d AS (
    SELECT donation_id, fund, avail, {fund_cls} AS cls,
           (SUM(avail) OVER (PARTITION BY {fund_cls} ORDER BY paid_at NULLS LAST, donation_id))::bigint AS hi
    FROM mfund
    WHERE avail > 0 AND {fund_filter} AND product = %(product)s AND grp = %(grp)s
), total AS MATERIALIZED (SELECT cls, MAX(hi) AS t FROM d GROUP BY cls),
n AS (
    SELECT {need_cls} AS cls, household_id, member_id, donor_share, hrank, grp FROM mneed
    WHERE NOT funded AND {need_cls} IN (SELECT cls FROM total) {bound}
), hh AS (
    SELECT cls, household_id, MIN(hrank) AS hrank, SUM(donor_share)::bigint AS amt,
           bool_and(%(grp)s = '' OR grp = %(grp)s) AS ok
    FROM n GROUP BY cls, household_id
), hhc AS (
    SELECT cls, household_id, hrank, amt, (SUM(amt) OVER (PARTITION BY cls ORDER BY hrank))::bigint AS hi
    FROM hh WHERE ok
), chosen AS MATERIALIZED (
    -- Strict priority: the prefix of households whose whole shares the class's money covers,
    -- at most %(cap)s of them (the run's household cap left): the best-scored across the
    -- batch's classes, which keeps a prefix of each class's order.
    SELECT cls, household_id, amt, hi FROM (
        SELECT hhc.*, row_number() OVER (ORDER BY hhc.hrank) AS rk
        FROM hhc JOIN total USING (cls) WHERE hhc.hi <= total.t
    ) x WHERE rk <= %(cap)s
), counted AS (
    INSERT INTO mcap (households) SELECT count(*) FROM chosen RETURNING 1
), m AS (
    SELECT n.cls, n.member_id,
           c.hi - c.amt + (SUM(n.donor_share) OVER (PARTITION BY n.cls, n.household_id ORDER BY n.member_id))::bigint
           AS hi
    FROM n JOIN chosen c USING (cls, household_id)
), top AS MATERIALIZED (SELECT cls, MAX(hi) AS t FROM m GROUP BY cls),
ev AS (
    SELECT cls, pos, MAX(member_id) AS mid, MAX(donation_id) AS did FROM (
        SELECT cls, hi AS pos, member_id, NULL::bigint AS donation_id FROM m
        UNION ALL
        SELECT d.cls, d.hi, NULL, d.donation_id FROM d JOIN top USING (cls) WHERE d.hi - d.avail < top.t
    ) e GROUP BY cls, pos
), seg AS (
    SELECT cls, pos - COALESCE(lag(pos) OVER (PARTITION BY cls ORDER BY pos), 0) AS len, mid, did,
           count(mid) OVER (PARTITION BY cls ORDER BY pos DESC) AS mg,
           count(did) OVER (PARTITION BY cls ORDER BY pos DESC) AS dg
    FROM ev
), own AS (
    SELECT MAX(mid) OVER (PARTITION BY cls, mg) AS member_id, MAX(did) OVER (PARTITION BY cls, dg) AS donation_id,
           len
    FROM seg
), p AS (
    INSERT INTO mpair (donation_id, member_id, fund, amount)
    SELECT o.donation_id, o.member_id, d.fund, SUM(o.len)
    FROM own o JOIN d USING (donation_id)
    WHERE o.member_id IS NOT NULL
    GROUP BY o.donation_id, o.member_id, d.fund
    RETURNING donation_id, member_id, amount
), used AS (
    UPDATE mfund f SET avail = f.avail - u.s
    FROM (SELECT donation_id, SUM(amount) AS s FROM p GROUP BY donation_id) u
    WHERE f.donation_id = u.donation_id RETURNING 1
)
UPDATE mneed SET funded = true WHERE member_id IN (SELECT member_id FROM p)
"""

LOCAL = "locality_id IS NOT NULL AND loc_level IS DISTINCT FROM 'province'"
ANYWHERE = "locality_id IS NULL"

# A class that may fund every waiting household of the shard (money for the province or for
# anywhere, no group restriction) funds at most the run's `cap` best-ranked of them: its needs
# are cut to those before the pairing sorts them, so a capped run's pairing costs what its cap
# funds, not the whole remaining queue.
BOUND_SQL = (
    "AND hrank <= (SELECT MAX(hrank) FROM (SELECT DISTINCT hrank FROM mneed WHERE NOT funded "
    "ORDER BY hrank LIMIT %(cap)s) top_households)"
)


def _batches(cur, *, product: str) -> list[tuple]:
    """Restriction classes in batches, most specific first: (fund filter, fund cls, need cls,
    params). Commune money first (all communes of one (product, group) together), then money for
    the province, then money for anywhere; within each, product- and group-restricted first."""
    cur.execute("SELECT DISTINCT locality_id, loc_level, product, grp FROM mfund WHERE avail > 0")
    local, province, anywhere = set(), [], []
    for loc, level, prod, grp in cur.fetchall():
        if prod and prod != product:
            continue  # money for another product waits for that product's run
        if loc is None:
            anywhere.append((loc, prod, grp))
        elif level == "province":
            province.append((loc, prod, grp))
        else:
            local.add((prod, grp))

    def specific(prod, grp):
        return (prod == "", grp == "", prod, grp)

    out = [
        (LOCAL, "locality_id", "locality_id", {"product": p, "grp": g})
        for p, g in sorted(local, key=lambda k: specific(*k))
    ]
    for loc, p, g in sorted(province, key=lambda k: (*specific(k[1], k[2]), k[0])):
        out.append(("locality_id = %(loc)s", "0", "0", {"loc": loc, "product": p, "grp": g}))
    for _loc, p, g in sorted(anywhere, key=lambda k: specific(k[1], k[2])):
        out.append((ANYWHERE, "0", "0", {"product": p, "grp": g}))
    return out


def pair(cur, *, product: str, cap: int, demand=None) -> bool:
    """Pair every restriction class, funding at most `cap` households in all (the holds'
    included); unrestricted money only households scoring at least the national cutoff
    (`demand`: national.QueueDemand, asked when the first such class comes).
    Returns whether the run stopped at the cap (more may be left for the next)."""
    # The planner under-estimates the CTEs' row counts (grouped by class) and would join two
    # of them in a nested loop, quadratic in a shard's members; every join here is a hash or
    # merge join of whole sets.
    cur.execute("SELECT set_config('enable_nestloop', 'off', true)")
    cur.execute("INSERT INTO mcap (households) SELECT count(DISTINCT household_id) FROM mneed WHERE funded")
    capped = False
    for fund_filter, fund_cls, need_cls, params in _batches(cur, product=product):
        cur.execute("SELECT SUM(households) FROM mcap")
        left = cap - cur.fetchone()[0]
        if left <= 0:
            capped = True
            break
        bound = BOUND_SQL if fund_cls == "0" and params["grp"] == "" else ""
        if demand is not None and fund_filter == ANYWHERE and params["grp"] == "":
            cutoff = demand.cutoff()
            if cutoff is not None:
                # Households further down the national order leave this money to other provinces.
                bound += " AND round(score, 1) >= %(cutoff)s"
                params = {**params, "cutoff": cutoff}
        cur.execute(
            PAIR_SQL.format(fund_filter=fund_filter, fund_cls=fund_cls, need_cls=need_cls, bound=bound),
            {**params, "cap": left},
        )
    else:
        cur.execute("SELECT SUM(households) FROM mcap")
        capped = cur.fetchone()[0] >= cap
    cur.execute("SELECT set_config('enable_nestloop', 'on', true)")
    return capped


# Cards first, captured as written; then the allocations. No history row for the initial
# `funded`: a card's first history entry is the card itself (funded_at, its allocations' run;
# Card.history); every later change is a CardTransition row.
CARDS_SQL = """
WITH cards AS (
    INSERT INTO sponsorship_card (member_id, household_id, locality_id, product, "group", months, period_start,
        premium_vnd, state_share_vnd, province_share_vnd, donor_share_vnd, ladder_position, pricing_schedule_id,
        pricing_rule_ids, status, card_code, rejection_reason, is_flagged, flag_reason, funded_at, updated_at)
    SELECT n.member_id, n.household_id, n.locality_id, %(product)s, n.grp, %(months)s, %(period)s, n.premium,
        n.state_share, n.province_share, n.donor_share, n.ladder_position, n.schedule_id, n.rule_ids::jsonb,
        'funded', '', '', false, '', now(), now()
    FROM mneed n WHERE n.funded
    RETURNING id, member_id, household_id, locality_id, renewal_of_id
)
INSERT INTO mcard SELECT * FROM cards
"""

ALLOCATIONS_SQL = """
INSERT INTO sponsorship_allocation (run_id, donation_id, card_id, fund, amount_vnd, score, rule_version,
    components, created_at)
SELECT %(run)s, p.donation_id, c.id, p.fund, p.amount, n.score, %(version)s, n.components::jsonb, now()
FROM mpair p JOIN mcard c USING (member_id) JOIN mneed n USING (member_id)
"""


def written_references(run_id: int) -> list:
    """Every foreign key of the rows the matcher writes (sponsorship_card, sponsorship_allocation),
    selected from what was written: verified set-based when the writes leave the
    set_based_fk_checks block. tests/matching/test_bulk_fk.py checks this list against the
    models' ForeignKey fields, so a new key cannot be forgotten."""
    from config.bulk_fk import Reference

    return [
        Reference("sponsorship_card.member_id", "beneficiaries_member", "SELECT member_id FROM mcard"),
        Reference("sponsorship_card.household_id", "beneficiaries_household", "SELECT household_id FROM mcard"),
        Reference("sponsorship_card.locality_id", "beneficiaries_locality", "SELECT locality_id FROM mcard"),
        Reference("sponsorship_card.renewal_of_id", "sponsorship_card", "SELECT renewal_of_id FROM mcard"),
        Reference("sponsorship_allocation.run_id", "sponsorship_matchingrun", "SELECT %(r)s::bigint", {"r": run_id}),
        Reference("sponsorship_allocation.donation_id", "sponsorship_donation", "SELECT donation_id FROM mpair"),
        # The cards were inserted by this run's own statement (mcard is its RETURNING).
        Reference(
            "sponsorship_allocation.card_id",
            "sponsorship_card",
            "SELECT c.id FROM mpair p JOIN mcard c USING (member_id)",
            lock=False,
        ),
    ]


def write_cards_and_allocations(cur, *, run_id: int, product: str, months: int, period_start, version: int) -> int:
    """The funded members' cards and their allocations, without PostgreSQL's per-row
    foreign-key triggers (config/bulk_fk.py): every key is verified set-based before the block
    ends, and an orphan raises IntegrityError (the run rolls back). Returns allocations written."""
    from config.bulk_fk import set_based_fk_checks

    with set_based_fk_checks(cur, written_references(run_id)):
        cur.execute(CARDS_SQL, {"product": product, "months": months, "period": period_start})
        cur.execute(ALLOCATIONS_SQL, {"run": run_id, "version": version})
        allocations = cur.rowcount
    return allocations


def match_province(
    *,
    province_id: int,
    product: str | None = None,
    period_start: date | None = None,
    max_households: int | None = None,
):
    """Match one province shard in one transaction, funding at most `max_households`
    (CHUNGTAY_MATCHING_MAX_HOUSEHOLDS_PER_RUN) households of the top of the queue. Returns the
    MatchingRun (`capped` when it stopped at the cap: call again for the rest), or None when
    another worker holds the shard. Safe to run twice: a second run finds nothing left."""
    product = product or settings.CHUNGTAY_MATCHING_PRODUCT
    cap = max_households or settings.CHUNGTAY_MATCHING_MAX_HOUSEHOLDS_PER_RUN
    months = settings.CHUNGTAY_MATCHING_MONTHS
    period_start = period_start or current_period_start()
    started = time.monotonic()
    rule = active_rule()
    try:
        with transaction.atomic(), connection.cursor() as cur:
            cur.execute("SELECT pg_try_advisory_xact_lock(%s, %s)", [LOCK_NAMESPACE, province_id])
            if not cur.fetchone()[0]:
                return None
            # The pairing and pricing sort and hash a shard's members and gifts at once; with the
            # default work_mem (4 MB) a large shard spills every sort to disk.
            cur.execute("SELECT set_config('work_mem', %s, true)", [settings.CHUNGTAY_MATCHING_WORK_MEM])
            # JIT-compiling these long statements costs more than it saves (≈30 ms per small
            # restriction class, ≈1 s on a large shard's pairing); they are sort- and I/O-bound.
            cur.execute("SELECT set_config('jit', 'off', true)")
            run = MatchingRun.objects.create(province_id=province_id, rule=rule)
            _create_temp_tables(cur)
            key = _pass_key(province_id=province_id, product=product, period_start=period_start, rule=rule)
            continued = pass_continues(cur, run=run, key=key)
            money_in = stage_funds(cur, province_id=province_id, continued=continued)
            if continued:
                needs = restage_needs_of_pass(cur)
            else:
                needs = stage_needs(
                    cur, province_id=province_id, product=product, months=months, period_start=period_start, rule=rule
                )
            # Matching features (holds, members not to match now): hooks.before_pair, on the temp tables.
            from . import hooks

            hooks.before_pair(cur, province_id=province_id, product=product, period_start=period_start)
            # Unrestricted money reaches only as far down as the national order says (national.py).
            demand = national.QueueDemand(cur, province_id=province_id, product=product)
            capped = bool(money_in and needs) and pair(cur, product=product, cap=cap, demand=demand)
            allocations = write_cards_and_allocations(
                cur, run_id=run.pk, product=product, months=months, period_start=period_start, version=rule.version
            )
            cur.execute("SELECT fund, SUM(amount) FROM mpair GROUP BY fund ORDER BY fund")
            per_fund = cur.fetchall()
            allocated = sum(s for _, s in per_fund)
            if allocated:
                entries = []
                for fund, amount in per_fund:
                    entries += [
                        debit(Account.DONOR_FUNDS, int(amount), fund),
                        credit(Account.ALLOCATED_TO_CARDS, int(amount), fund),
                    ]
                ledger_post(
                    key=f"allocation:run:{run.pk}", entries=entries, kind="allocation", memo=f"matching run {run.pk}"
                )
            cur.execute("SELECT COUNT(*) FROM mneed WHERE funded")
            cards = cur.fetchone()[0]
            demand.finish()
            if capped:
                keep_pass(cur, run=run, key=key, continued=continued)
            else:
                # A continued run's mneed is the pass's session table: it does not go at commit.
                cur.execute("DROP TABLE IF EXISTS mneed")
                end_pass(cur)
            MatchingRun.objects.filter(pk=run.pk).update(
                status=RunStatus.DONE,
                money_in_vnd=money_in,
                money_allocated_vnd=allocated,
                money_left_vnd=money_in - allocated,
                needs=needs,
                cards_funded=cards,
                allocations=allocations,
                capped=capped,
                unrestricted_cutoff=demand.value,
                duration_ms=int((time.monotonic() - started) * 1000),
            )
            run.refresh_from_db()
            return run
    except Exception as exc:
        logger.exception("matching province %s failed", province_id)
        MatchingRun.objects.create(
            province_id=province_id,
            rule=rule,
            status=RunStatus.FAILED,
            error=str(exc)[:2000],
            duration_ms=int((time.monotonic() - started) * 1000),
        )
        raise


def provinces_with_work() -> list[int]:
    """Provinces with approved members (the fan-out's shards)."""
    return list(
        Member.objects.filter(status=MemberStatus.APPROVED)
        .values_list("locality__province_id", flat=True)
        .distinct()
        .order_by("locality__province_id")
    )
