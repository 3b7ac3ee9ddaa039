"""Agency batches: hand-off lists of funded cards, guarded status changes, ledger remittance."""

from __future__ import annotations

from collections import defaultdict

from django.db import transaction
from django.utils import timezone

from config.exceptions import ApplicationError, ConflictError

from ..card_models import Card, CardStatus
from ..services.cards import card_transition
from ..services.ledger import credit, debit, ledger_post
from .models import BATCH_TRANSITIONS, AgencyBatch, AgencyBatchCard, BatchStatus


def _move(batch_id: int, to: str) -> AgencyBatch:
    batch = AgencyBatch.objects.select_for_update().get(pk=batch_id)
    if batch.status != to and to not in BATCH_TRANSITIONS[batch.status]:
        raise ConflictError(f"A batch in status {batch.status!r} cannot become {to!r}.", code="batch_status")
    return batch


@transaction.atomic
def batch_create(*, locality, product: str, period, by=None, collection_agent: str = "", card_ids=None) -> AgencyBatch:
    """Put the commune's funded cards of `product` (or the given ones) into a new batch; they
    become listed. Raises when there is nothing to list."""
    cards = Card.objects.select_for_update(skip_locked=True).filter(
        locality=locality, product=product, status=CardStatus.FUNDED
    )
    if card_ids is not None:
        cards = cards.filter(pk__in=card_ids)
    ids = list(cards.order_by("pk").values_list("pk", flat=True))
    if not ids:
        raise ApplicationError("No funded cards to list for this commune and product.", code="batch_empty")
    batch = AgencyBatch.objects.create(
        locality=locality,
        product=product,
        period=period,
        created_by=by,
        collection_agent=collection_agent,
        status=BatchStatus.LISTED,
    )
    AgencyBatchCard.objects.bulk_create(AgencyBatchCard(batch=batch, card_id=i) for i in ids)
    for card_id in ids:
        card_transition(card_id=card_id, to=CardStatus.LISTED, by=by, reason=f"batch {batch.reference}")
    return batch


@transaction.atomic
def batch_cancel(*, batch_id: int, by=None) -> AgencyBatch:
    """Cancel a batch not yet submitted: its cards go back to funded (idempotent)."""
    batch = _move(batch_id, BatchStatus.CANCELLED)
    if batch.status == BatchStatus.CANCELLED:
        return batch
    for item in batch.items.filter(is_live=True):
        card_transition(card_id=item.card_id, to=CardStatus.FUNDED, by=by, reason=f"batch {batch.reference} cancelled")
    batch.items.update(is_live=False)
    batch.status, batch.cancelled_at = BatchStatus.CANCELLED, timezone.now()
    batch.save(update_fields=["status", "cancelled_at"])
    return batch


@transaction.atomic
def batch_submit(*, batch_id: int, by=None) -> AgencyBatch:
    batch = _move(batch_id, BatchStatus.SUBMITTED)
    if batch.status == BatchStatus.SUBMITTED:
        return batch
    for item in batch.items.filter(is_live=True):
        card_transition(card_id=item.card_id, to=CardStatus.SUBMITTED, by=by, reason=f"batch {batch.reference}")
    batch.status, batch.submitted_at = BatchStatus.SUBMITTED, timezone.now()
    batch.save(update_fields=["status", "submitted_at"])
    return batch


def _fund_amounts(card_ids) -> dict[str, int]:
    """Money on the cards per fund: matching's allocations (which gift paid how much of which
    card, from which fund) are the one record of it."""
    from sponsorship.matching.models import Allocation

    per_fund: dict[str, int] = defaultdict(int)
    for fund, amount in Allocation.objects.filter(card_id__in=card_ids).values_list("fund", "amount_vnd"):
        per_fund[fund] += amount
    return per_fund


@transaction.atomic
def batch_mark_paid(*, batch_id: int, by=None) -> AgencyBatch:
    """The money of the batch's cards went to the agency: allocated_to_cards → remitted_to_agency,
    one ledger transaction keyed by the batch (re-running posts nothing)."""
    batch = _move(batch_id, BatchStatus.PAID)
    # A card the agency already rejected gave its money back to the pool: it is not paid for
    # (found by tests/reliability's ledger machine; paying it counted that money twice).
    card_ids = list(
        batch.items.filter(is_live=True).exclude(card__status=CardStatus.REJECTED).values_list("card_id", flat=True)
    )
    per_fund = _fund_amounts(card_ids)
    total = sum(per_fund.values())
    if total:
        entries = [debit("allocated_to_cards", amount, fund) for fund, amount in sorted(per_fund.items())]
        entries.append(credit("remitted_to_agency", total))
        ledger_post(key=f"remit:batch:{batch.pk}", entries=entries, memo=f"Remitted {batch.reference}", kind="remit")
    if batch.status != BatchStatus.PAID:
        batch.status, batch.paid_at = BatchStatus.PAID, timezone.now()
        batch.save(update_fields=["status", "paid_at"])
    return batch


def card_reject_refund(*, card: Card) -> None:
    """A card the agency rejected gives its money back to the pool of the same fund(s)
    (allocated_to_cards → donor_funds), idempotent per card."""
    per_fund = _fund_amounts([card.pk])
    # A card whose batch was already paid has its money at the agency, not in
    # allocated_to_cards: the agency owes it back (found by tests/reliability's ledger machine;
    # taking it from allocated_to_cards drove that fund negative).
    remitted = AgencyBatchCard.objects.filter(card=card, is_live=True, batch__status=BatchStatus.PAID).exists()
    entries = []
    for fund, amount in sorted(per_fund.items()):
        if remitted:
            entries += [debit("remitted_to_agency", amount), credit("donor_funds", amount, fund)]
        else:
            entries += [debit("allocated_to_cards", amount, fund), credit("donor_funds", amount, fund)]
    if entries:
        ledger_post(key=f"reject:card:{card.pk}", entries=entries, memo=f"Card {card.pk} rejected", kind="reject")
    # The matcher counts a gift's money as spent while allocations to it exist; releasing the
    # rejected card's allocations puts the money back in the pool it re-matches from. The
    # card's history and the ledger keep the record of what happened. Idempotent.
    from sponsorship.matching.models import Allocation

    Allocation.objects.filter(card=card).delete()
    # The member is not matched again until re-approved (matching/exclusions.py).
    from sponsorship.matching.exclusions import member_return_after_rejection

    member_return_after_rejection(member_id=card.member_id, reason=card.rejection_reason or "rejected")
