"""Who must not be matched now, although the registry still says `approved`.

Before this module, a card the agency rejected left the member `approved` and without a live
card, so the next run (30 s later) bought the same person a new card, which the agency would
reject again, each time binding donors' money for a list cycle. Now:

1. The agency's rejection returns the member for information (`approved → returned`, history
   row with the agency's reason, no actor): the commune officer corrects and resubmits, a
   reviewer approves again, and only then is the member matched (`member_return_after_rejection`).
2. As a last line (and for rejections recorded before this change), the run drops from its
   needs any member whose latest card of the product was rejected after their latest approval
   (`drop_excluded_needs`, called by the matcher through hooks.before_pair).

Members suspended or rejected in review are not `approved`, so the matcher never stages them;
a suspended member's cards not yet sent are un-matched (unmatch.member_cards_unmatch).
"""

from django.db import transaction
from django.utils import timezone

# Members whose latest rejected card is newer than their latest approval. Driven from the
# rejected cards (few) rather than probing once per staged need (up to millions).
DROP_SQL = """
DELETE FROM mneed n
USING (
    SELECT c.member_id, MAX(ct.at) AS rejected_at
    FROM sponsorship_card c JOIN sponsorship_cardtransition ct ON ct.card_id = c.id AND ct.to_status = 'rejected'
    WHERE c.product = %(product)s AND c.status = 'rejected'
    GROUP BY c.member_id
) r
WHERE n.member_id = r.member_id
  AND NOT EXISTS (SELECT 1 FROM beneficiaries_membertransition mt
                  WHERE mt.member_id = r.member_id AND mt.to_status = 'approved' AND mt.at > r.rejected_at)
"""


def drop_excluded_needs(cur, *, product: str) -> int:
    """Delete excluded members from the run's staged needs (temp table mneed). Returns how many."""
    cur.execute(DROP_SQL, {"product": product})
    return cur.rowcount


@transaction.atomic
def member_return_after_rejection(*, member_id: int, reason: str) -> bool:
    """approved → returned after the agency rejected the member's card. Guarded in the UPDATE
    (a member no longer approved is left alone); True when it moved. Idempotent."""
    from beneficiaries.models import Member, MemberStatus, MemberTransition

    moved = Member.objects.filter(pk=member_id, status=MemberStatus.APPROVED).update(
        status=MemberStatus.RETURNED, updated_at=timezone.now()
    )
    if moved:
        MemberTransition.objects.create(
            member_id=member_id,
            actor=None,
            from_status=MemberStatus.APPROVED,
            to_status=MemberStatus.RETURNED,
            reason=f"Card rejected by the agency: {reason}"[:2000],
        )
    return bool(moved)
