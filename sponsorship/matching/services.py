"""The set-based matcher, one province shard per transaction.

1. Claim the shard: pg_try_advisory_xact_lock(MATCHING, province). Busy → skip (another worker
   is matching it; beat comes back in 30 s).
2. Needs: approved members of the province without a live card for (product, period), priced
   per household in Python (`price_household`, the ladder is a household matter) and copied into
   a temp table with the household's priority score and its components.
3. Funds: cleared gifts whose restriction can reach the province, row-locked FOR UPDATE SKIP
   LOCKED (a gift being matched by another province's worker is simply left for later); what a
   gift has left = its donor_funds credits in the ledger − its allocations.
4. For each restriction class (most specific first) ONE statement pairs the class's gifts
   (ordered by payment time) with the households it may fund (ordered by score) by the overlap of
   their running totals. Only households whose whole donor share fits are funded (strict priority
   prefix); smaller money stays pooled.
5. Cards (funded), card history, allocations (with score, rule version, components) and one
   ledger transaction (donor_funds[fund] → allocated_to_cards[fund]) in the same transaction.
"""

import logging
import time
from collections import defaultdict
from datetime import date
from decimal import Decimal

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from beneficiaries.models import Member, MemberStatus

from ..card_models import LIVE_STATUSES, Card
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


def score_household(*, rule: MatchingRule, poverty_class: str, members, period_start: date, now=None) -> tuple:
    """(score, components) of a household: the explanation stored on each allocation."""
    now = now or timezone.now()
    months = max(_months_uncovered(m, period_start) for m in members)
    waiting = max((now - min(m.created_at for m in members)).days, 0)
    gap = 0  # no yearly targets in the data yet: the term is kept so the rule can weigh it later
    poverty = Decimal(str((rule.poverty_weights or {}).get(poverty_class, 0)))
    score = rule.gap_weight * gap + rule.months_weight * months + poverty + rule.waiting_weight * waiting
    components = {"gap": gap, "months_uncovered": months, "poverty_class": poverty_class, "waiting_days": waiting}
    return score.quantize(Decimal("0.001")), components


NEED_COLUMNS = (
    "household_id, member_id, locality_id, grp, premium, state_share, province_share, donor_share, "
    "ladder_position, schedule_id, rule_ids, score, components"
)


def _create_temp_tables(cur) -> None:
    cur.execute("DROP TABLE IF EXISTS mneed, mfund, mpair")
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


def stage_needs(cur, *, province_id: int, product: str, months: int, period_start: date, rule: MatchingRule) -> int:
    """Price the province's waiting households into mneed (COPY). Returns members staged."""
    import json

    from beneficiaries.pricing import price_household

    live = Card.objects.filter(product=product, period_start=period_start, status__in=LIVE_STATUSES)
    members = (
        Member.objects.filter(locality__province_id=province_id, status=MemberStatus.APPROVED)
        .exclude(pk__in=live.values("member_id"))
        .select_related("household")
        .order_by("household_id", "id")
    )
    by_household = defaultdict(list)
    for m in members:
        by_household[m.household_id].append(m)
    now = timezone.now()
    staged = 0
    rows = []
    if True:
        for group in by_household.values():
            household = group[0].household
            hp = price_household(
                household=household,
                product=PRICING_PRODUCT.get(product, product),
                months=months,
                on_date=period_start,
                members=group,
            )
            lines = [(m, p) for m, p in hp.lines if p.eligible and p.donor_share_vnd > 0]
            if not lines:
                continue
            score, components = score_household(
                rule=rule, poverty_class=household.poverty_class, members=group, period_start=period_start, now=now
            )
            for m, p in lines:
                rows.append(
                    (
                        household.pk, m.pk, m.locality_id, p.group, p.premium_vnd, p.state_share_vnd,
                        p.province_share_vnd, p.donor_share_vnd, p.ladder_position, p.schedule_id,
                        json.dumps(list(p.rule_ids)), score, json.dumps(components),
                    )
                )  # fmt: skip
                staged += 1
    # Pricing reads the database, so the COPY starts only once every household is priced.
    with cur.cursor.copy(f"COPY mneed ({NEED_COLUMNS}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
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


# Pair one restriction class's gifts with the households it may fund, in one statement.
PAIR_SQL = """
WITH d AS (
    SELECT donation_id, fund, avail, SUM(avail) OVER (ORDER BY paid_at NULLS LAST, donation_id) AS hi
    FROM mfund
    WHERE avail > 0 AND locality_id IS NOT DISTINCT FROM %(loc)s AND product = %(product)s AND grp = %(grp)s
), total AS (SELECT COALESCE(MAX(hi), 0) AS t FROM d),
n AS (
    SELECT * FROM mneed
    WHERE NOT funded AND %(product_ok)s
      AND (%(loc)s::bigint IS NULL OR (%(level)s = 'province') OR locality_id = %(loc)s)
), hh AS (
    SELECT household_id, MAX(score) AS score, SUM(donor_share) AS amt, bool_and(%(grp)s = '' OR grp = %(grp)s) AS ok
    FROM n GROUP BY household_id
), hhc AS (
    SELECT household_id, amt, SUM(amt) OVER (ORDER BY score DESC, household_id) AS hi
    FROM hh WHERE ok
), chosen AS (
    SELECT hhc.* FROM hhc, total WHERE hhc.hi <= total.t
), m AS (
    SELECT n.member_id,
           c.hi - c.amt + SUM(n.donor_share) OVER (PARTITION BY n.household_id ORDER BY n.member_id)
             - n.donor_share AS lo,
           c.hi - c.amt + SUM(n.donor_share) OVER (PARTITION BY n.household_id ORDER BY n.member_id) AS hi
    FROM n JOIN chosen c USING (household_id)
), p AS (
    INSERT INTO mpair (donation_id, member_id, fund, amount)
    SELECT d.donation_id, m.member_id, d.fund, LEAST(m.hi, d.hi) - GREATEST(m.lo, d.hi - d.avail)
    FROM m JOIN d ON m.lo < d.hi AND d.hi - d.avail < m.hi
    RETURNING donation_id, member_id, amount
), used AS (
    UPDATE mfund f SET avail = f.avail - u.s
    FROM (SELECT donation_id, SUM(amount) AS s FROM p GROUP BY donation_id) u
    WHERE f.donation_id = u.donation_id RETURNING 1
)
UPDATE mneed SET funded = true WHERE member_id IN (SELECT member_id FROM p)
"""


def _classes(cur) -> list[tuple]:
    """Restriction classes, most specific first (commune, province, anywhere; product; group)."""
    cur.execute("SELECT DISTINCT locality_id, loc_level, product, grp FROM mfund WHERE avail > 0")
    rows = cur.fetchall()
    rank = {"commune": 0, "province": 1, None: 2}
    return sorted(rows, key=lambda r: (rank.get(r[1], 1), r[2] == "", r[3] == "", r[0] or 0, r[2], r[3]))


def pair(cur, *, product: str) -> None:
    for loc, level, prod, grp in _classes(cur):
        if prod and prod != product:
            continue  # money for another product waits for that product's run
        cur.execute(
            PAIR_SQL.replace("%(product_ok)s", "true"),
            {"loc": loc, "level": level or "", "product": prod, "grp": grp},
        )


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
