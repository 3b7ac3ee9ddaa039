"""Rollups of sponsored enrollments, recomputed from the cards (delete + insert in one
transaction; never incremented), and the daily lifecycle-by-date job.

Counting rules (per 2025 locality, year, type, month of the card's valid-from):
- new enrollment: the member's first card of that type, or the previous one ended 3 months or
  more before this one starts (lapsed);
- renewal: any other enrolled card of that type;
- raised: the donor share of the cards counted; pending: the donor share of cards funded,
  listed or submitted (not yet on the agency's list), by month of their requested start.
"""

from __future__ import annotations

from datetime import date, timedelta

from django.db import connection, transaction

from ..card_models import Card, CardStatus
from ..services.cards import card_transition

TYPE_SQL = "CASE c.product WHEN 'si_voluntary' THEN 'si_voluntary' ELSE 'hi' END"
COUNTED = "('enrolled','active','expiring','expired','renewed')"
PENDING = "('funded','listed','submitted')"

RECOMPUTE_SQL = f"""
WITH src AS (
    SELECT c.locality_id, l.province_id,
           EXTRACT(YEAR FROM c.valid_from)::int AS year, EXTRACT(MONTH FROM c.valid_from)::int AS month,
           {TYPE_SQL} AS type,
           CASE WHEN prev.is_renewal THEN 0 ELSE 1 END AS is_new,
           CASE WHEN prev.is_renewal THEN 1 ELSE 0 END AS is_renewal,
           c.donor_share_vnd AS raised, 0::bigint AS pending
    FROM sponsorship_card c
    JOIN beneficiaries_locality l ON l.id = c.locality_id
    CROSS JOIN LATERAL (
        SELECT EXISTS (
            SELECT 1 FROM sponsorship_card p
            WHERE p.member_id = c.member_id AND p.product = c.product AND p.id <> c.id
              AND p.status IN {COUNTED} AND p.valid_from < c.valid_from
              AND p.valid_to >= c.valid_from - INTERVAL '3 months'
        ) AS is_renewal
    ) prev
    WHERE c.status IN {COUNTED} AND c.valid_from IS NOT NULL
    UNION ALL
    SELECT c.locality_id, l.province_id,
           EXTRACT(YEAR FROM c.period_start)::int, EXTRACT(MONTH FROM c.period_start)::int,
           {TYPE_SQL}, 0, 0, 0::bigint, c.donor_share_vnd
    FROM sponsorship_card c
    JOIN beneficiaries_locality l ON l.id = c.locality_id
    WHERE c.status IN {PENDING}
), communes AS (
    SELECT locality_id, province_id, year, month, type,
           SUM(is_new) AS n, SUM(is_renewal) AS r, SUM(raised) AS raised, SUM(pending) AS pending
    FROM src GROUP BY locality_id, province_id, year, month, type
)
INSERT INTO sponsorship_enrollmentrollup
    (locality_id, province_id, level, year, month, type, new_enrollments, renewals, raised_vnd, pending_vnd)
SELECT locality_id, province_id, 'commune', year, month, type, n, r, raised, pending FROM communes
UNION ALL
SELECT province_id, province_id, 'province', year, month, type, SUM(n), SUM(r), SUM(raised), SUM(pending)
FROM communes GROUP BY province_id, year, month, type
"""


def rollups_recompute() -> int:
    """Rebuild every rollup row from the cards; returns the number of rows written. Two runs at
    once serialise on a transaction-level advisory lock; either result is the same."""
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(hashtext('enrollment_rollups'))")
        cur.execute("DELETE FROM sponsorship_enrollmentrollup")
        cur.execute(RECOMPUTE_SQL)
        return cur.rowcount


def cards_advance_by_date(today: date | None = None, *, expiring_days: int = 60) -> dict[str, int]:
    """enrolled → active once valid, → expiring within `expiring_days` of the end, → expired after it."""
    today = today or date.today()
    moved = {"active": 0, "expiring": 0, "expired": 0}
    expired = Card.objects.filter(
        status__in=[CardStatus.ENROLLED, CardStatus.ACTIVE, CardStatus.EXPIRING], valid_to__lt=today
    )
    for pk in expired.values_list("pk", flat=True).iterator():
        card_transition(card_id=pk, to=CardStatus.EXPIRED, reason="validity ended")
        moved["expired"] += 1
    soon = today + timedelta(days=expiring_days)
    expiring = Card.objects.filter(
        status__in=[CardStatus.ENROLLED, CardStatus.ACTIVE],
        valid_from__lte=today,
        valid_to__gte=today,
        valid_to__lte=soon,
    )
    for pk in expiring.values_list("pk", flat=True).iterator():
        card_transition(card_id=pk, to=CardStatus.EXPIRING, reason="validity ends soon")
        moved["expiring"] += 1
    active = Card.objects.filter(status=CardStatus.ENROLLED, valid_from__lte=today, valid_to__gte=today)
    for pk in active.values_list("pk", flat=True).iterator():
        card_transition(card_id=pk, to=CardStatus.ACTIVE, reason="validity started")
        moved["active"] += 1
    return moved
