"""Creating gifts, their guarded status transitions, and the money-derived status."""

import secrets

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Sum
from django.utils.translation import gettext as _

from config.exceptions import ApplicationError, ConflictError

from ..models import Appearance, Donation, DonationHistory, DonationStatus, Method, Product

S = DonationStatus
# Statuses derived from money received (facts from Stripe or the bank may arrive in any order).
_MONEY = {S.SUCCEEDED, S.PARTIALLY_PAID, S.PARTIALLY_REFUNDED, S.REFUNDED, S.DISPUTED}
# Which status may follow which. Money-derived statuses (paid, refunded, disputed) move as
# facts arrive in any order, so they can follow one another; "pending" can only go forward.
ALLOWED = {
    S.PENDING: {S.REQUIRES_ACTION, S.FAILED, S.CANCELED, *_MONEY},
    S.REQUIRES_ACTION: {S.PENDING, S.FAILED, S.CANCELED, *_MONEY},
    S.FAILED: {S.PENDING, S.REQUIRES_ACTION, S.CANCELED, *_MONEY},
    S.PARTIALLY_PAID: {S.SUCCEEDED, S.PARTIALLY_REFUNDED, S.REFUNDED, S.DISPUTED},
    S.SUCCEEDED: {S.PARTIALLY_PAID, S.PARTIALLY_REFUNDED, S.REFUNDED, S.DISPUTED},
    S.PARTIALLY_REFUNDED: {S.SUCCEEDED, S.REFUNDED, S.DISPUTED},
    # Back to succeeded: a business's matched gift given back in full and matched again in
    # full when the gift it matched won its dispute (matching/offers.py, matches_regrow).
    S.REFUNDED: {S.SUCCEEDED, S.PARTIALLY_REFUNDED, S.DISPUTED},
    S.DISPUTED: {S.SUCCEEDED, S.PARTIALLY_REFUNDED, S.REFUNDED},
    S.CANCELED: _MONEY,  # money that arrives anyway is still money
}
PAID_STATUSES = {S.SUCCEEDED, S.PARTIALLY_PAID, S.PARTIALLY_REFUNDED, S.REFUNDED, S.DISPUTED}

REFERENCE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O/1/I: typed from a phone


def new_reference() -> str:
    return "CT" + "".join(secrets.choice(REFERENCE_ALPHABET) for _ in range(8))


def fund_key(*, locality_id=None, product="", group="", campaign="") -> str:
    """The restriction a gift's money carries in the ledger ('*' = where most needed)."""
    return f"loc={locality_id or '*'};prod={product or '*'};grp={group or '*'};camp={campaign or '*'}"


def transition(donation: Donation, to: str, note: str = "") -> bool:
    """Move a locked donation to `to`, writing history. Same status: no-op (False)."""
    if donation.status == to:
        return False
    if to not in ALLOWED.get(donation.status, set()):
        raise ConflictError(
            _("A donation that is %(from)s cannot become %(to)s.") % {"from": donation.status, "to": to},
            code="donation_transition",
        )
    DonationHistory.objects.create(donation=donation, from_status=donation.status, to_status=to, note=note[:300])
    donation.status = to
    return True


def money_totals(donation_ids) -> dict[int, dict[str, int]]:
    """Per donation: donor_funds sums by transaction kind (one grouped query)."""
    from ..models import Account, LedgerEntry

    out: dict[int, dict[str, int]] = {}
    rows = (
        LedgerEntry.objects.filter(transaction__donation_id__in=list(donation_ids), account=Account.DONOR_FUNDS)
        .values_list("transaction__donation_id", "transaction__kind")
        .annotate(s=Sum("amount"))
        .values_list("transaction__donation_id", "transaction__kind", "s")
    )
    for donation_id, kind, total in rows:
        out.setdefault(donation_id, {})[kind] = total
    return out


def apply_totals(donation: Donation, rows: dict[str, int], note: str = "", *, history: list | None = None) -> None:
    """Set received/refunded/status of a *locked* donation from its ledger sums (no save).
    With `history`, history rows are appended there for a bulk insert."""
    received = -(rows.get("card_paid", 0) + rows.get("bank_paid", 0))
    refunded = rows.get("refund", 0)
    disputed = rows.get("dispute", 0) + rows.get("dispute_reinstated", 0)
    donation.amount_received_vnd = received
    donation.amount_refunded_vnd = min(refunded, received)
    if received <= 0:
        target = donation.status
    elif disputed > 0:
        target = S.DISPUTED
    elif refunded >= received:
        target = S.REFUNDED
    elif refunded > 0:
        target = S.PARTIALLY_REFUNDED
    elif received < donation.amount_vnd:
        target = S.PARTIALLY_PAID
    else:
        target = S.SUCCEEDED
    if history is None:
        transition(donation, target, note)
    elif donation.status != target:
        if target not in ALLOWED.get(donation.status, set()):
            raise ConflictError(f"A donation that is {donation.status} cannot become {target}.")
        history.append(
            DonationHistory(donation=donation, from_status=donation.status, to_status=target, note=note[:300])
        )
        donation.status = target


# Bulk version of apply_totals for the batch paths (bank statements, the Stripe inbox): the
# status rules mirror apply_totals — keep them in step. Returns the ids paid for the first time.
RECOMPUTE_SQL = """
WITH touched AS (
    SELECT id, status, paid_at FROM sponsorship_donation WHERE id = ANY(%(ids)s::bigint[]) FOR UPDATE
), sums AS (
    SELECT t.donation_id AS id,
        -COALESCE(SUM(e.amount) FILTER (WHERE t.kind IN ('card_paid', 'bank_paid')), 0) AS received,
        COALESCE(SUM(e.amount) FILTER (WHERE t.kind = 'refund'), 0) AS refunded,
        COALESCE(SUM(e.amount) FILTER (WHERE t.kind IN ('dispute', 'dispute_reinstated')), 0) AS disputed
    FROM sponsorship_ledgertransaction t JOIN sponsorship_ledgerentry e ON e.transaction_id = t.id
    WHERE t.donation_id = ANY(%(ids)s::bigint[]) AND e.account = 'donor_funds'
    GROUP BY t.donation_id
), upd AS (
    UPDATE sponsorship_donation d SET
        amount_received_vnd = s.received,
        amount_refunded_vnd = LEAST(s.refunded, s.received),
        paid_at = COALESCE(d.paid_at, now()),
        status = CASE
            WHEN s.received <= 0 THEN d.status
            WHEN s.disputed > 0 THEN 'disputed'
            WHEN s.refunded >= s.received THEN 'refunded'
            WHEN s.refunded > 0 THEN 'partially_refunded'
            WHEN s.received < d.amount_vnd THEN 'partially_paid'
            ELSE 'succeeded' END
    FROM sums s WHERE d.id = s.id
    RETURNING d.id, d.status
), hist AS (
    INSERT INTO sponsorship_donationhistory (donation_id, from_status, to_status, note, at)
    SELECT upd.id, touched.status, upd.status, %(note)s, now()
    FROM upd JOIN touched ON touched.id = upd.id WHERE touched.status <> upd.status
)
SELECT touched.id FROM touched WHERE touched.paid_at IS NULL
"""


def recompute_money(donation: Donation, note: str = "") -> None:
    """Recompute received/refunded/status of a *locked* donation from its facts (ledger
    transactions), never by increments, so replays and reordering cannot skew them."""
    apply_totals(donation, money_totals([donation.pk]).get(donation.pk, {}), note)
    donation.save()
    # Matching reacts here, for payments, refunds and disputes alike: lost money un-matches
    # cards not yet sent, cleared money starts match offers and a run (after commit).
    from ..matching import hooks as matching_hooks

    matching_hooks.money_recomputed(donation)


def donation_create(
    *,
    donor,
    method: str,
    amount_vnd: int | None = None,
    cards_count: int | None = None,
    locality=None,
    product: str = "",
    beneficiary_group: str = "",
    campaign: str = "",
    appearance: str = Appearance.NAMED,
    idempotency_key: str = "",
    has_redirect_consent: bool = False,
    min_vnd: int | None = None,
) -> tuple[Donation, bool]:
    """Create a gift. Idempotent per donor by `idempotency_key` (the API's Idempotency-Key
    header): the same key returns the first donation, so a double click never makes two.
    No side effects beyond the row."""
    if idempotency_key:
        existing = Donation.objects.filter(donor=donor, idempotency_key=idempotency_key).first()
        if existing:
            return existing, False
    if method not in Method.values:
        raise ApplicationError(_("Choose card or bank transfer."), code="method")
    if product and product not in Product.values:
        raise ApplicationError(_("Unknown product."), code="product")
    if appearance not in Appearance.values:
        raise ApplicationError(_("Choose how you want to appear."), code="appearance")
    if appearance == Appearance.COMPANY:
        profile = getattr(donor, "donor_profile", None)
        if profile is None or not profile.company_name:
            raise ApplicationError(_("Only a business donor can appear as a company."), code="appearance")
    if cards_count:
        if amount_vnd:
            raise ApplicationError(_("Give an amount or a number of cards, not both."), code="amount")
        amount_vnd = int(cards_count) * settings.DONATION_CARD_PRICE_VND
    if not amount_vnd:
        raise ApplicationError(_("Enter an amount or a number of cards."), code="amount")
    amount_vnd = int(amount_vnd)
    # `min_vnd`: a caller's own, lower minimum (a business paying the last of its match pledges).
    lo, hi = (settings.DONATION_MIN_VND if min_vnd is None else min_vnd), settings.DONATION_MAX_VND
    if amount_vnd < lo:
        raise ApplicationError(
            _("The smallest gift is %(min)s VND.") % {"min": f"{lo:,}".replace(",", ".")}, code="amount_too_small"
        )
    if amount_vnd > hi:
        raise ApplicationError(
            _("The largest gift online is %(max)s VND; for more, please contact us.")
            % {"max": f"{hi:,}".replace(",", ".")},
            code="amount_too_large",
        )
    fields = dict(
        donor=donor,
        method=method,
        amount_vnd=amount_vnd,
        cards_count=cards_count or None,
        locality=locality,
        product=product,
        beneficiary_group=beneficiary_group,
        campaign=campaign,
        appearance=appearance,
        idempotency_key=idempotency_key,
        has_redirect_consent=bool(has_redirect_consent),
        fund_key=fund_key(
            locality_id=getattr(locality, "pk", None), product=product, group=beneficiary_group, campaign=campaign
        ),
    )
    for _attempt in range(5):
        try:
            with transaction.atomic():
                donation = Donation.objects.create(reference=new_reference(), **fields)
                # A pledge to one commune holds that commune's top needs while it clears.
                from ..matching import holds as matching_holds

                matching_holds.pledge_created(donation)
                return donation, True
        except IntegrityError:
            # Either the same Idempotency-Key raced us (return the winner) or the random
            # reference collided (draw again).
            if idempotency_key:
                existing = Donation.objects.filter(donor=donor, idempotency_key=idempotency_key).first()
                if existing:
                    return existing, False
    raise ApplicationError("Could not allocate a reference.")
