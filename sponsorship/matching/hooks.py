"""The few entry points other services call into matching. Each caller carries one commented
line; everything matching does in reaction lives behind these functions.

- `money_recomputed(donation)`: donations.recompute_money, after a payment, refund or dispute
  of one (locked) gift changed its money.
- `gifts_paid(donation_ids)`: the bulk payment paths (Stripe inbox, bank statements).
- `members_approved(member_ids)`, `member_status_changed(...)`: the registry's review services.
- `before_pair(cur, ...)`: the matcher, between staging needs/funds and pairing (temp tables
  mneed, mfund, mpair of services.py).
"""

from ..models import DonationStatus

# Statuses in which a gift has lost money after it cleared: refunds and disputes.
LOSS_STATUSES = {DonationStatus.PARTIALLY_REFUNDED, DonationStatus.REFUNDED, DonationStatus.DISPUTED}


def money_recomputed(donation) -> None:
    """A gift's money changed (locked row, inside the caller's transaction). Money lost to a
    refund or dispute un-matches what it paid for; cleared money starts the gift's match
    offers and a matching run after commit."""
    from . import offers, settlement, triggers, unmatch

    # A business settling its match pledges: its money goes on to match_pledges (first, so
    # what the gift still has is right when release_excess reads it).
    settlement.settlement_sync(donation=donation)
    if donation.status in LOSS_STATUSES:
        unmatch.release_excess(donation=donation)
        # A gift that was matched by an offer shrinks its match in proportion.
        offers.matches_shrink(source=donation)
    # Money back after a loss (a dispute won, even on a gift partly refunded): a match that
    # shrank grows back as far as the gift's money now allows.
    offers.matches_regrow(source=donation)
    if donation.amount_received_vnd > 0:
        offers.gift_cleared(donation_ids=[donation.pk])
        triggers.money_cleared(donation_ids=[donation.pk])


def gifts_paid(donation_ids) -> None:
    """Bulk payment paths: these gifts received money (inside the caller's transaction)."""
    from . import offers, settlement, triggers

    ids = list(donation_ids)
    settlement.settlements_paid(ids)
    offers.gift_cleared(donation_ids=ids)
    triggers.money_cleared(donation_ids=ids)


def members_approved(member_ids) -> None:
    from . import triggers

    triggers.members_approved(member_ids=member_ids)


def member_status_changed(*, member_id: int, to_status: str) -> None:
    """The registry's review moved one member (inside its transaction)."""
    from beneficiaries.models import MemberStatus

    from . import triggers, unmatch

    if to_status == MemberStatus.APPROVED:
        triggers.members_approved(member_ids=[member_id])
    elif to_status in (MemberStatus.SUSPENDED, MemberStatus.REJECTED, MemberStatus.RETURNED):
        unmatch.member_cards_unmatch(member_ids=[member_id], reason=f"member {to_status} in review")


def before_pair(cur, *, province_id: int, product: str, period_start) -> None:
    """Inside the run's transaction, after mneed/mfund are staged and before pairing:
    drop members who must not be matched now, then fund holds with their holders' money and
    hide needs held by others."""
    from . import exclusions, holds

    exclusions.drop_excluded_needs(cur, product=product)
    holds.apply_holds(cur, province_id=province_id, product=product)
