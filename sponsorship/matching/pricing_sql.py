"""The registry's card price (beneficiaries/pricing.py) computed set-based in PostgreSQL, for
the matcher: a million members are priced in one statement instead of a Python call each.

Same data, same rules: the PremiumSchedule row in force on the date, the SupportRule rows in
force (national, the household's province, its commune) and the VoluntarySIParameters row;
nothing is copied into code. tests/matching/test_pricing_sql.py proves with hypothesis that
every field equals `price_household` for random households, members and dates, and that the
FACTS §2 table cells come out.

Input: a temp table `mcand(member_id bigint)` — the members to price *together* (the ladder
places a household's GD members among the candidates of that household, exactly as
`price_household(members=…)` does with the list it is given). Output: `PRICE_COLUMNS` per
candidate (eligible or not), read by `price_rows` or inserted by the matcher.

Rounding: Python quantizes Decimals half-up; PostgreSQL's round(numeric) rounds half away
from zero. Both are exact decimal arithmetic and every amount is positive, so they agree.
"""

from __future__ import annotations

from datetime import date

from beneficiaries.pricing import HI_MONTHS
from config.exceptions import ApplicationError

PRICE_COLUMNS = (
    "member_id, household_id, eligible, reason, grp, premium, state_share, province_share, donor_share, "
    "ladder_position, schedule_id, rule_ids"
)

# One support rule per jurisdiction: the highest share, ties broken like Python's max() over
# the model's ordering (group, jurisdiction, valid_from), then id.
_RULE = """
LEFT JOIN LATERAL (
    SELECT r.id, r.share, r."group" FROM beneficiaries_supportrule r
    WHERE r.jurisdiction = '{j}' {where} AND r."group" = ANY(cls.groups)
      AND r.valid_from <= %(on)s AND (r.valid_to IS NULL OR r.valid_to >= %(on)s)
    ORDER BY r.share DESC, r."group", r.jurisdiction, r.valid_from, r.id LIMIT 1
) {alias} ON true"""

HI_SQL = f"""
WITH s AS (
    SELECT id, base_salary_vnd::numeric * hi_rate AS monthly, ladder_1, ladder_2, ladder_3, ladder_4, ladder_5
    FROM beneficiaries_premiumschedule WHERE valid_from <= %(on)s ORDER BY valid_from DESC LIMIT 1
), m AS (
    SELECT mb.id AS member_id, mb.household_id, h.locality_id AS h_loc, hl.province_id AS h_prov, h.poverty_class,
           mb.relation, mb.date_of_birth, mb.personal_id,
           mb.status IN ('rejected', 'suspended') AS inactive,
           COALESCE(mb.card_valid_until >= %(on)s, false) AS covered,
           array_remove(ARRAY[
               CASE WHEN h.poverty_class = 'near_poor' THEN 'near_poor' END,
               CASE WHEN h.poverty_class = 'near_poor' AND h.is_poor_commune THEN 'near_poor_poor_commune' END,
               CASE WHEN h.poverty_class = 'average_farming' THEN 'average_farming' END,
               CASE WHEN mb.is_student THEN 'student' END
           ]::text[], NULL) AS groups
    FROM mcand c
    JOIN beneficiaries_member mb ON mb.id = c.member_id
    JOIN beneficiaries_household h ON h.id = mb.household_id
    JOIN beneficiaries_locality hl ON hl.id = h.locality_id
), lad AS (
    -- The household ladder (FACTS §2): GD members who take a card, head first, then by birth.
    SELECT member_id, row_number() OVER (
        PARTITION BY household_id ORDER BY relation <> 'head', date_of_birth, personal_id COLLATE "C"
    ) AS pos
    FROM m WHERE NOT inactive AND NOT covered AND cardinality(groups) = 0
), cls AS (
    -- Supported members fall into few (commune, groups) classes: look the rules up once per class.
    SELECT DISTINCT h_loc, h_prov, groups FROM m
    WHERE cardinality(groups) > 0 AND NOT inactive AND NOT covered AND poverty_class <> 'poor'
), rules AS (
    SELECT cls.h_loc, cls.groups, nat.id AS nat_id, nat.share AS nat_share, nat."group" AS nat_group,
           pr.id AS pr_id, pr.share AS pr_share, cm.id AS cm_id, cm.share AS cm_share
    FROM cls
    {_RULE.format(j="national", where="", alias="nat")}
    {_RULE.format(j="province", where="AND r.locality_id = cls.h_prov", alias="pr")}
    {_RULE.format(j="commune", where="AND r.locality_id = cls.h_loc", alias="cm")}
), sup AS (
    SELECT m.member_id, r.*, round(s.monthly * %(months)s) AS premium
    FROM m JOIN rules r ON r.h_loc = m.h_loc AND r.groups = m.groups CROSS JOIN s
), sup2 AS (
    SELECT sup.*, CASE WHEN nat_id IS NULL THEN 0 ELSE round(premium * nat_share) END AS state,
           COALESCE(round(premium * pr_share), 0) + COALESCE(round(premium * cm_share), 0) AS local_raw
    FROM sup
), sup3 AS (
    SELECT sup2.*, LEAST(local_raw, premium - state) AS local FROM sup2
)
SELECT m.member_id, m.household_id,
    CASE WHEN m.inactive OR m.poverty_class = 'poor' OR m.covered THEN false
         WHEN cardinality(m.groups) = 0 THEN true
         ELSE x.premium - x.state - x.local > 0 END,
    CASE WHEN m.inactive THEN 'inactive' WHEN m.poverty_class = 'poor' THEN 'poor_household'
         WHEN m.covered THEN 'already_covered' WHEN cardinality(m.groups) = 0 THEN ''
         WHEN x.premium - x.state - x.local > 0 THEN '' ELSE 'state_pays_all' END,
    CASE WHEN m.inactive THEN '' WHEN m.poverty_class = 'poor' THEN 'poor' WHEN m.covered THEN ''
         WHEN cardinality(m.groups) = 0 THEN 'GD' ELSE COALESCE(x.nat_group, m.groups[1]) END,
    CASE WHEN m.inactive OR m.poverty_class = 'poor' OR m.covered THEN 0
         WHEN cardinality(m.groups) = 0 THEN round(s.monthly * CASE LEAST(l.pos, 5)
             WHEN 1 THEN s.ladder_1 WHEN 2 THEN s.ladder_2 WHEN 3 THEN s.ladder_3 WHEN 4 THEN s.ladder_4
             ELSE s.ladder_5 END * %(months)s)
         ELSE x.premium END::bigint AS premium,
    CASE WHEN cardinality(m.groups) = 0 OR m.inactive OR m.poverty_class = 'poor' OR m.covered THEN 0
         ELSE x.state END::bigint,
    CASE WHEN cardinality(m.groups) = 0 OR m.inactive OR m.poverty_class = 'poor' OR m.covered THEN 0
         ELSE x.local END::bigint,
    CASE WHEN m.inactive OR m.poverty_class = 'poor' OR m.covered THEN 0
         WHEN cardinality(m.groups) = 0 THEN round(s.monthly * CASE LEAST(l.pos, 5)
             WHEN 1 THEN s.ladder_1 WHEN 2 THEN s.ladder_2 WHEN 3 THEN s.ladder_3 WHEN 4 THEN s.ladder_4
             ELSE s.ladder_5 END * %(months)s)
         ELSE x.premium - x.state - x.local END::bigint AS donor_share,
    CASE WHEN m.inactive OR m.poverty_class = 'poor' OR m.covered OR cardinality(m.groups) > 0 THEN NULL
         ELSE l.pos END::int,
    CASE WHEN m.inactive OR m.poverty_class = 'poor' OR m.covered THEN NULL ELSE s.id END,
    CASE WHEN cardinality(m.groups) = 0 OR m.inactive OR m.poverty_class = 'poor' OR m.covered THEN '[]'
         ELSE to_jsonb(array_remove(ARRAY[x.nat_id, x.pr_id, x.cm_id], NULL))::text END
FROM m CROSS JOIN s
LEFT JOIN lad l ON l.member_id = m.member_id
LEFT JOIN sup3 x ON x.member_id = m.member_id
"""

# Voluntary SI (FACTS §3) at the minimum income; the state supports at most the cap's months
# less those the member has used (Member.vsi_support_months_used, counted on enrolment).
VSI_SQL = """
WITH p AS (
    SELECT id, contribution_rate, min_income_vnd, support_years_cap,
           share_poor, share_near_poor, share_ethnic_minority, share_other
    FROM beneficiaries_voluntarysiparameters WHERE valid_from <= %(on)s ORDER BY valid_from DESC LIMIT 1
), m AS (
    SELECT mb.id AS member_id, mb.household_id, mb.status IN ('rejected', 'suspended') AS inactive,
           mb.vsi_support_months_used AS months_used, h.poverty_class, h.is_ethnic_minority
    FROM mcand c
    JOIN beneficiaries_member mb ON mb.id = c.member_id
    JOIN beneficiaries_household h ON h.id = mb.household_id
), g AS (
    -- The highest of the shares the household qualifies for; ties go to the first listed,
    -- like Python's max() over (other, poor, near_poor, ethnic_minority).
    SELECT m.*, p.id AS params_id, p.contribution_rate, p.min_income_vnd, p.support_years_cap, best.grp, best.share
    FROM m CROSS JOIN p
    CROSS JOIN LATERAL (
        SELECT grp, share FROM (VALUES
            (1, 'other', p.share_other),
            (2, 'poor', CASE WHEN m.poverty_class = 'poor' THEN p.share_poor END),
            (3, 'near_poor', CASE WHEN m.poverty_class = 'near_poor' THEN p.share_near_poor END),
            (4, 'ethnic_minority', CASE WHEN m.is_ethnic_minority THEN p.share_ethnic_minority END)
        ) v(k, grp, share) WHERE share IS NOT NULL ORDER BY share DESC, k LIMIT 1
    ) best
), v AS (
    SELECT g.*, round(contribution_rate * min_income_vnd * %(months)s) AS premium,
           round(share * contribution_rate * min_income_vnd
                 * GREATEST(0, LEAST(%(months)s, support_years_cap * 12 - months_used))) AS state
    FROM g
)
SELECT member_id, household_id, NOT inactive, CASE WHEN inactive THEN 'inactive' ELSE '' END,
       CASE WHEN inactive THEN '' ELSE grp END,
       CASE WHEN inactive THEN 0 ELSE premium END::bigint, CASE WHEN inactive THEN 0 ELSE state END::bigint,
       0::bigint, CASE WHEN inactive THEN 0 ELSE premium - state END::bigint,
       NULL::int, CASE WHEN inactive THEN NULL ELSE params_id END, '[]'
FROM v
"""


def price_sql(*, product: str, months: int, on_date: date) -> tuple[str, dict]:
    """(SELECT statement, params) pricing every member of the temp table `mcand`. Raises like
    the Python service where it would raise for every member (months not sold, no data in force)."""
    from beneficiaries.models import PremiumSchedule, VoluntarySIParameters

    if not PremiumSchedule.objects.filter(valid_from__lte=on_date).exists():
        raise ApplicationError(f"No premium schedule is in force on {on_date}.")
    params = {"on": on_date, "months": months}
    if product == "vsi":
        if months < 1:
            raise ApplicationError("Voluntary SI is paid for at least one month.")
        if not VoluntarySIParameters.objects.filter(valid_from__lte=on_date).exists():
            raise ApplicationError(f"No voluntary SI parameters are in force on {on_date}.")
        return VSI_SQL, params
    if product != "hi":
        raise ApplicationError(f"Unknown product {product!r}.")
    # Students may also buy 9 months; the matcher buys one length for everyone, so it must be
    # a length every member may buy.
    if months not in HI_MONTHS:
        raise ApplicationError(f"A card is bought for {sorted(HI_MONTHS)} months.")
    return HI_SQL, params


def create_candidates(cur, member_ids=None, *, select_sql: str | None = None, params=None) -> None:
    """Fill the temp table mcand (dropped at commit) from ids or from a SELECT of member ids."""
    cur.execute("DROP TABLE IF EXISTS mcand")
    cur.execute("CREATE TEMP TABLE mcand (member_id bigint PRIMARY KEY) ON COMMIT DROP")
    if select_sql is not None:
        cur.execute(f"INSERT INTO mcand (member_id) {select_sql}", params or {})
    elif member_ids:
        cur.execute("INSERT INTO mcand (member_id) SELECT unnest(%s::bigint[])", [list(member_ids)])
    cur.execute("ANALYZE mcand")


def price_rows(cur, *, product: str, months: int, on_date: date) -> dict[int, dict]:
    """member id → the SQL price of each member in mcand (for tests and explanations)."""
    sql, params = price_sql(product=product, months=months, on_date=on_date)
    cur.execute(sql, params)
    names = [c.strip() for c in PRICE_COLUMNS.split(",")]
    return {row[0]: dict(zip(names, row, strict=True)) for row in cur.fetchall()}
