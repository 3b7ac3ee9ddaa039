"""Months of state support for voluntary social insurance a member has used (FACTS §3: the
state supports a participant's contribution for at most 10 years). `Member.vsi_support_months_used`
is what pricing subtracts from the cap (beneficiaries/pricing.py); it grows here, when the
agency confirms a voluntary-SI card (card-list import → `enrolled`).

Exactly once per card: the caller holds the card's row lock and says whether this import moved
it to `enrolled` (a re-imported list finds it enrolled already and adds nothing). The count
never passes the cap: months beyond it had no support to use. No path moves an enrolled card
back (CARD_TRANSITIONS), so nothing ever gives months back.
"""

from django.db import connection

from ..card_models import Card
from ..models import Product


def vsi_support_months_record(*, card: Card) -> int:
    """The agency enrolled `card` (locked, just moved to enrolled): add its supported months to
    the member's count (capped at the cap in force on the card's start). Returns the months
    added (0 for other products and cards that had no state support)."""
    from beneficiaries.pricing import vsi_parameters_on

    if card.product != Product.SI_VOLUNTARY or card.state_share_vnd <= 0:
        return 0
    cap = vsi_parameters_on(card.period_start).support_years_cap * 12
    with connection.cursor() as cur:
        # One guarded UPDATE: the member's row lock orders concurrent enrolments of its cards.
        cur.execute(
            "UPDATE beneficiaries_member m SET vsi_support_months_used = LEAST(m.vsi_support_months_used + %s, %s) "
            "FROM (SELECT id, vsi_support_months_used AS old FROM beneficiaries_member WHERE id = %s FOR UPDATE) o "
            "WHERE m.id = o.id RETURNING m.vsi_support_months_used - o.old",
            [card.months, cap, card.member_id],
        )
        row = cur.fetchone()
    return int(row[0]) if row else 0
