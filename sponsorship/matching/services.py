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
5. Cards (funded), card history, allocations (with score, rule version, components) and one
   ledger transaction (donor_funds[fund] → allocated_to_cards[fund]) in the same transaction.
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
    "ladder_position, schedule_id, rule_ids, score, components"
)


def _create_temp_tables(cur) -> None:
    cur.execute("DROP TABLE IF EXISTS mneed, mfund, mpair, mgap")
    cur.execute(
        "CREATE TEMP TABLE mneed (household_id bigint, member_id bigint, locality_id bigint, grp text, "
        "premium bigint, state_share bigint, province_share bigint, donor_share bigint, ladder_position int, "
        "schedule_id bigint, rule_ids text, score numeric, components text, funded boolean DEFAULT false) "
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


# The province's waiting members (approved, no live card for this product and period).
CANDIDATES_SQL = """
SELECT mb.id FROM beneficiaries_member mb JOIN beneficiaries_locality l ON l.id = mb.locality_id
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
    FROM mcand c JOIN beneficiaries_member mb ON mb.id = c.member_id
    JOIN beneficiaries_household h ON h.id = mb.household_id
    JOIN beneficiaries_locality hl ON hl.id = h.locality_id
    GROUP BY mb.household_id, h.poverty_class, h.locality_id, hl.province_id
), scored AS (
    SELECT hh.*, COALESCE(cg.gap, 0) AS cgap, COALESCE(pg.gap, 0) AS pgap,
           COALESCE((%(poverty)s::jsonb ->> hh.poverty_class)::numeric, 0) AS poverty
    FROM hh LEFT JOIN mgap cg ON cg.locality_id = hh.locality_id LEFT JOIN mgap pg ON pg.locality_id = hh.province_id
)
SELECT p.household_id, p.member_id, mb.locality_id, p.grp, p.premium, p.state_share, p.province_share,
       p.donor_share, p.ladder_position, p.schedule_id, p.rule_ids,
       round(%(w_gap)s * s.cgap + %(w_pgap)s * s.pgap + %(w_months)s * s.months + s.poverty
             + %(w_wait)s * s.waiting, 3),
       json_build_object('gap', s.cgap, 'province_gap', s.pgap, 'months_uncovered', s.months,
                         'poverty_class', s.poverty_class, 'waiting_days', s.waiting)::text
FROM price p JOIN scored s USING (household_id) JOIN beneficiaries_member mb ON mb.id = p.member_id
WHERE p.eligible AND p.donor_share > 0
"""


def stage_needs(cur, *, province_id: int, product: str, months: int, period_start: date, rule: MatchingRule) -> int:
    """Price and score the province's waiting members into mneed, set-based. Returns members staged."""
    import json

    from .pricing_sql import PRICE_COLUMNS, create_candidates, price_sql

    create_candidates(
        cur,
        select_sql=CANDIDATES_SQL,
        params={"province": province_id, "product": product, "period": period_start, "live": list(LIVE_STATUSES)},
    )
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


def stage_funds(cur, *, province_id: int) -> int:
    """Lock the gifts that can reach this province (SKIP LOCKED) and compute what each has left."""
    cur.execute(
        "INSERT INTO mfund (donation_id, locality_id, loc_level, product, grp, fund, paid_at) "
        "SELECT d.id, d.locality_id, l.level, d.product, d.beneficiary_group, d.fund_key, d.paid_at "
        "FROM sponsorship_donation d LEFT JOIN beneficiaries_locality l ON l.id = d.locality_id "
        "WHERE d.status = ANY(%s) AND (d.locality_id IS NULL OR l.province_id = %s) "
        "FOR UPDATE OF d SKIP LOCKED",
        [list(PAID), province_id],
    )
    cur.execute(
        "UPDATE mfund f SET avail = COALESCE((SELECT -SUM(e.amount) FROM sponsorship_ledgerentry e "
        "  JOIN sponsorship_ledgertransaction t ON t.id = e.transaction_id "
        "  WHERE t.donation_id = f.donation_id AND e.account = 'donor_funds'), 0) "
        "- COALESCE((SELECT SUM(a.amount_vnd) FROM sponsorship_allocation a WHERE a.donation_id = f.donation_id), 0)"
    )
    cur.execute("DELETE FROM mfund WHERE avail <= 0")
    cur.execute("SELECT COALESCE(SUM(avail), 0) FROM mfund")
    return cur.fetchone()[0]


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
           SUM(avail) OVER (PARTITION BY {fund_cls} ORDER BY paid_at NULLS LAST, donation_id) AS hi
    FROM mfund
    WHERE avail > 0 AND {fund_filter} AND product = %(product)s AND grp = %(grp)s
), total AS MATERIALIZED (SELECT cls, MAX(hi) AS t FROM d GROUP BY cls),
n AS (
    SELECT {need_cls} AS cls, household_id, member_id, donor_share, score, grp FROM mneed
    WHERE NOT funded AND {need_cls} IN (SELECT cls FROM total)
), hh AS (
    SELECT cls, household_id, MAX(score) AS score, SUM(donor_share) AS amt,
           bool_and(%(grp)s = '' OR grp = %(grp)s) AS ok
    FROM n GROUP BY cls, household_id
), hhc AS (
    SELECT cls, household_id, amt, SUM(amt) OVER (PARTITION BY cls ORDER BY score DESC, household_id) AS hi
    FROM hh WHERE ok
), chosen AS MATERIALIZED (
    -- Strict priority: the prefix of households whose whole shares the class's money covers.
    SELECT hhc.* FROM hhc JOIN total USING (cls) WHERE hhc.hi <= total.t
), m AS (
    SELECT n.cls, n.member_id,
           c.hi - c.amt + SUM(n.donor_share) OVER (PARTITION BY n.cls, n.household_id ORDER BY n.member_id) AS hi
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
        out.append(("locality_id IS NULL", "0", "0", {"product": p, "grp": g}))
    return out


def pair(cur, *, product: str) -> None:
    # The planner under-estimates the CTEs' row counts (grouped by class) and would join two
    # of them in a nested loop, quadratic in a shard's members; every join here is a hash or
    # merge join of whole sets.
    cur.execute("SELECT set_config('enable_nestloop', 'off', true)")
    for fund_filter, fund_cls, need_cls, params in _batches(cur, product=product):
        cur.execute(PAIR_SQL.format(fund_filter=fund_filter, fund_cls=fund_cls, need_cls=need_cls), params)
    cur.execute("SELECT set_config('enable_nestloop', 'on', true)")


FUND_SQL = """
WITH cards AS (
    INSERT INTO sponsorship_card (member_id, household_id, locality_id, product, "group", months, period_start,
        premium_vnd, state_share_vnd, province_share_vnd, donor_share_vnd, ladder_position, pricing_schedule_id,
        pricing_rule_ids, status, card_code, rejection_reason, is_flagged, flag_reason, funded_at, updated_at)
    SELECT n.member_id, n.household_id, n.locality_id, %(product)s, n.grp, %(months)s, %(period)s, n.premium,
        n.state_share, n.province_share, n.donor_share, n.ladder_position, n.schedule_id, n.rule_ids::jsonb,
        'funded', '', '', false, '', now(), now()
    FROM mneed n WHERE n.funded
    RETURNING id, member_id
), hist AS (
    INSERT INTO sponsorship_cardtransition (card_id, from_status, to_status, reason, at)
    SELECT id, '', 'funded', %(reason)s, now() FROM cards RETURNING 1
), alloc AS (
    INSERT INTO sponsorship_allocation (run_id, donation_id, card_id, fund, amount_vnd, score, rule_version,
        components, created_at)
    SELECT %(run)s, p.donation_id, c.id, p.fund, p.amount, n.score, %(version)s, n.components::jsonb, now()
    FROM mpair p JOIN cards c USING (member_id) JOIN mneed n USING (member_id)
    RETURNING card_id, donation_id, fund, amount_vnd
)
-- Enrollment (remittance, rejection refunds, reminders, the donor's gift page) reads who paid
-- a card from CardFunding; it is written here in the same statement as the allocations.
INSERT INTO sponsorship_cardfunding (card_id, donation_id, fund, amount_vnd)
SELECT card_id, donation_id, fund, amount_vnd FROM alloc
"""


def match_province(*, province_id: int, product: str | None = None, period_start: date | None = None):
    """Match one province shard in one transaction. Returns the MatchingRun, or None when
    another worker holds the shard. Safe to run twice: a second run finds nothing left."""
    product = product or settings.CHUNGTAY_MATCHING_PRODUCT
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
            money_in = stage_funds(cur, province_id=province_id)
            needs = stage_needs(
                cur, province_id=province_id, product=product, months=months, period_start=period_start, rule=rule
            )
            # Matching features (holds, members not to match now): hooks.before_pair, on the temp tables.
            from . import hooks

            hooks.before_pair(cur, province_id=province_id, product=product, period_start=period_start)
            if money_in and needs:
                pair(cur, product=product)
            cur.execute(
                FUND_SQL,
                {
                    "product": product,
                    "months": months,
                    "period": period_start,
                    "reason": f"matching run {run.pk}",
                    "run": run.pk,
                    "version": rule.version,
                },
            )
            allocations = cur.rowcount
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
            MatchingRun.objects.filter(pk=run.pk).update(
                status=RunStatus.DONE,
                money_in_vnd=money_in,
                money_allocated_vnd=allocated,
                money_left_vnd=money_in - allocated,
                needs=needs,
                cards_funded=cards,
                allocations=allocations,
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
