"""Card status transitions, guarded in the write itself."""

from django.db import transaction

from config.exceptions import ConflictError

from ..card_models import CARD_TRANSITIONS, Card, CardTransition


@transaction.atomic
def card_transition(*, card_id: int, to: str, by=None, reason: str = "", **fields) -> Card:
    """Move a card to `to` if its current status allows it; record the history row.

    Idempotent: a card already in `to` is returned unchanged with no new history row.
    `fields` (card_code, valid_from, ...) are written in the same UPDATE.
    """
    card = Card.objects.select_for_update().get(pk=card_id)
    if card.status == to:
        return card
    if to not in CARD_TRANSITIONS[card.status]:
        raise ConflictError(f"A card in status {card.status!r} cannot become {to!r}.", code="card_status")
    CardTransition.objects.create(card=card, from_status=card.status, to_status=to, by=by, reason=reason)
    card.status = to
    for name, value in fields.items():
        setattr(card, name, value)
    card.save(update_fields=["status", "updated_at", *fields])
    return card
