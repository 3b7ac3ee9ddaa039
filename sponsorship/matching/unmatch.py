"""Un-matching: money that leaves after it was allocated (a refund, a dispute) and members
who leave the programme (suspended) take back cards that have not reached the agency.

A card not yet sent (funded, or listed in a batch not yet submitted) is un-matched: its
allocations (from every gift that paid it) are released, the ledger moves the money back
(allocated_to_cards[fund] → donor_funds[gift's fund], kind `unmatch`, keyed by the card), the
card becomes `unmatched` (history row) and leaves its batch, so the member waits in the queue
again and the other gifts' money is matched again. A card already sent to the agency cannot
be taken back: it is flagged (`is_flagged`, `flag_reason`) and listed for finance on
/matching/flagged/.

Lock order, as in the matcher: the gift first (the refund/dispute services hold it), then
the cards.
"""

import logging

from django.db import transaction
from django.db.models import Sum
from django.utils.translation import gettext as _

from ..card_models import NOT_SENT_STATUSES, Card, CardStatus
from ..models import Account, Donation, LedgerEntry
from ..services.cards import card_transition
from ..services.ledger import credit, debit, ledger_post
from .models import Allocation

logger = logging.getLogger("sponsorship.matching")


def gift_cleared_money(donation_id: int) -> int:
    """What the gift brought and still has: its own donor_funds credits (payments − refunds
    − disputes; allocation postings carry no gift and are not counted), as the matcher reads it."""
    total = (
        LedgerEntry.objects.filter(transaction__donation_id=donation_id, account=Account.DONOR_FUNDS).aggregate(
            s=Sum("amount")
        )["s"]
        or 0
    )
    return -total


@transaction.atomic
def card_unmatch(*, card_id: int, reason: str, by=None) -> Card:
    """Un-match one card not yet sent to the agency. Idempotent: an unmatched card is returned
    unchanged; a sent card raises (the status guard of card_transition)."""
    from ..enrollment.models import AgencyBatchCard
    from . import triggers

    card = Card.objects.select_for_update().get(pk=card_id)
    if card.status == CardStatus.UNMATCHED:
        return card
    allocations = list(Allocation.objects.filter(card_id=card_id).select_related("donation"))
    card = card_transition(card_id=card_id, to=CardStatus.UNMATCHED, by=by, reason=reason[:500])
    entries = []
    for a in allocations:
        # Back into the gift's *current* fund: a gift redirected to "where most needed"
        # (expiry) is refunded from that fund, so its released money must land there too.
        entries += [
            debit(Account.ALLOCATED_TO_CARDS, a.amount_vnd, a.fund),
            credit(Account.DONOR_FUNDS, a.amount_vnd, a.donation.fund_key),
        ]
    if entries:
        ledger_post(key=f"unmatch:card:{card_id}", entries=entries, kind="unmatch", memo=reason[:300])
    # The matcher counts a gift's money as spent while allocations exist (as on an agency
    # rejection); the ledger (kind `unmatch`, keyed by the card) and the card's history keep the record.
    Allocation.objects.filter(card_id=card_id).delete()
    AgencyBatchCard.objects.filter(card_id=card_id, is_live=True).update(is_live=False)
    # The released money of the other gifts (and the member) are matched again.
    triggers.money_cleared(donation_ids=[a.donation_id for a in allocations])
    return card


def release_excess(*, donation: Donation) -> dict:
    """After a refund or dispute of a *locked* gift: while its allocations exceed the money it
    still has, un-match the newest cards it paid that are not sent yet; flag sent ones for
    what is still over. Idempotent (a second call finds nothing over, or the same flags).
    Returns {"unmatched": [...], "flagged": [...], "over_vnd": n}."""
    over = (
        Allocation.objects.filter(donation_id=donation.pk).aggregate(s=Sum("amount_vnd"))["s"] or 0
    ) - gift_cleared_money(donation.pk)
    result = {"unmatched": [], "flagged": [], "over_vnd": max(over, 0)}
    if over <= 0:
        return result
    reason = _("Money of gift %(ref)s was refunded or disputed (%(status)s).") % {
        "ref": donation.reference,
        "status": donation.status,
    }
    rows = list(
        Allocation.objects.filter(donation_id=donation.pk)
        .select_related("card")
        .order_by("-card__funded_at", "-card_id")
        .values_list("card_id", "card__status", "amount_vnd")
    )
    for card_id, status, amount in rows:
        if over <= 0:
            break
        if status in NOT_SENT_STATUSES:
            card_unmatch(card_id=card_id, reason=reason)
            result["unmatched"].append(card_id)
            over -= amount
    if over > 0:
        sent = [card_id for card_id, status, _amount in rows if status not in NOT_SENT_STATUSES]
        Card.objects.filter(pk__in=sent).update(is_flagged=True, flag_reason=reason)
        result["flagged"] = sent
        logger.warning("gift %s: %s VND refunded after its cards were sent: %s", donation.pk, over, sent)
    return result


def member_cards_unmatch(*, member_ids, reason: str) -> list[int]:
    """Members suspended (or otherwise no longer approved): their cards not yet sent are
    un-matched. Returns the card ids. Idempotent."""
    ids = list(
        Card.objects.filter(member_id__in=list(member_ids), status__in=NOT_SENT_STATUSES).values_list("pk", flat=True)
    )
    for card_id in ids:
        card_unmatch(card_id=card_id, reason=reason)
    return ids
