"""Settling match pledges: a business pays what its match offer owes.

What an offer owes is `match_pledges` for its matched gifts (offers.py posts Dr match_pledges /
Cr donor_funds[fund] for each) minus what its settlements already paid. A settlement is an
ordinary gift row of the business (`Donation`, method bank or card, unrestricted, its own `CT…`
reference) tied to the offer by `MatchSettlement`, so it is paid through the paths every gift
uses: the VietQR pledge page and the statement matching (lines found by reference, partial and
over-payments noted on the line), or the Stripe card flow (webhooks, refunds, disputes). Those
paths post the money as for any gift (Dr bank_clearing or stripe_clearing / Cr donor_funds[*]);
when the gift's money changes, the matching hooks call `settlement_sync`, which moves it on in
the same transaction: Dr donor_funds[*] / Cr match_pledges (kind `match_settled`, attributed to
the settlement's gift). Net: Dr bank_clearing (or stripe_clearing) / Cr match_pledges, and the
gift itself keeps nothing the matcher could spend.

- Under-payment: the gift is `partially_paid` (as any pledge); what arrived is settled, the
  rest stays owed and the business may pay it on the same reference or a new settlement.
- Over-payment: only what the offer owed is settled; the rest stays in donor_funds[*] as the
  business's gift "where most needed" (the gift carries the consent), shown on its offers page.
- A refund or lost dispute of a settlement takes back the surplus first, then the settled part
  (Dr match_pledges / Cr donor_funds[*]): the offer owes it again.

Each sync recomputes its target from the ledger (never increments), under the gift's row lock
(held by the payment path) and then the offer's (two settlements of one offer never both take
what it owes), so running it twice posts nothing the second time.
"""

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Sum
from django.utils.translation import gettext as _

from config.exceptions import ApplicationError

from ..models import Account, Appearance, Donation, LedgerEntry, LedgerTransaction, Method
from ..services.ledger import credit, debit, ledger_post
from .feature_models import MatchOffer, MatchSettlement

KIND = "match_settled"

# Per offer: what its matches pledged (net of what was given back) and what its settlements
# moved into match_pledges. One statement for the offers page and the finance page.
OWED_SQL = """
SELECT o.id,
       COALESCE((SELECT SUM(m.amount_vnd - m.returned_vnd) FROM sponsorship_offermatch m WHERE m.offer_id = o.id), 0),
       COALESCE((SELECT SUM(e.amount) FROM sponsorship_matchsettlement s
                 JOIN sponsorship_ledgertransaction t ON t.donation_id = s.donation_id AND t.kind = 'match_settled'
                 JOIN sponsorship_ledgerentry e ON e.transaction_id = t.id AND e.account = 'donor_funds'
                 WHERE s.offer_id = o.id), 0)
FROM sponsorship_matchoffer o WHERE o.id = ANY(%s::bigint[])
"""


def offers_owed(offer_ids) -> dict[int, dict[str, int]]:
    """{offer id: {"pledged", "settled", "owed"}}; owed < 0 is a credit of the business (a
    matched gift shrank after its pledge was paid)."""
    ids = list(offer_ids)
    if not ids:
        return {}
    with connection.cursor() as cur:
        cur.execute(OWED_SQL, [ids])
        rows = cur.fetchall()
    return {oid: {"pledged": p, "settled": s, "owed": p - s} for oid, p, s in rows}


def outstanding_by_business() -> list[dict]:
    """Finance: per business with an offer, what its offers pledged, what it paid and owes."""
    offers = list(MatchOffer.objects.select_related("business", "business__donor_profile").order_by("business_id"))
    owed = offers_owed([o.pk for o in offers])
    out: dict[int, dict] = {}
    for o in offers:
        profile = getattr(o.business, "donor_profile", None)
        row = out.setdefault(
            o.business_id,
            {
                "business": (profile.company_name if profile and profile.company_name else "") or o.business.email,
                "email": o.business.email,
                "offers": 0,
                "pledged": 0,
                "settled": 0,
                "owed": 0,
            },
        )
        row["offers"] += 1
        for k in ("pledged", "settled", "owed"):
            row[k] += owed[o.pk][k]
    return sorted(out.values(), key=lambda r: -r["owed"])


def settlement_create(
    *, offer: MatchOffer, by, method: str, amount_vnd: int | None = None, idempotency_key: str = ""
) -> MatchSettlement:
    """The business asks to pay (part of) what the offer owes: a pledge of its own (reference,
    VietQR, or the card flow). Idempotent by `idempotency_key` (the form's hidden key), as gifts
    are. Only the offer's business may settle it; never more than it owes at this moment."""
    from ..services.donations import donation_create

    if offer.business_id != by.pk:
        raise ApplicationError(_("Only the business that made the offer can settle it."), code="forbidden")
    if method not in Method.values:
        raise ApplicationError(_("Choose card or bank transfer."), code="method")
    if idempotency_key:
        existing = MatchSettlement.objects.filter(
            offer=offer, donation__donor=by, donation__idempotency_key=idempotency_key
        ).first()
        if existing:
            return existing
    owed = offers_owed([offer.pk])[offer.pk]["owed"]
    amount = int(amount_vnd or owed)
    if owed <= 0:
        raise ApplicationError(_("This offer owes nothing now."), code="nothing_owed")
    if amount > owed:
        raise ApplicationError(
            _("The offer owes %(owed)s VND; you cannot settle more.") % {"owed": f"{owed:,}".replace(",", ".")},
            code="amount_too_large",
        )
    profile = getattr(by, "donor_profile", None)
    # The last of a pledge may be below the smallest gift: by bank transfer it can be paid
    # whatever its size (a card charge has Stripe's own minimum, so the usual one stays).
    whole_by_bank = method == Method.BANK and amount == owed
    if amount < settings.DONATION_MIN_VND and not whole_by_bank:
        raise ApplicationError(
            _("Below %(min)s VND only the whole amount owed can be settled, by bank transfer.")
            % {"min": f"{settings.DONATION_MIN_VND:,}".replace(",", ".")},
            code="amount_too_small",
        )
    with transaction.atomic():
        donation, created = donation_create(
            donor=by,
            method=method,
            amount_vnd=amount,
            appearance=Appearance.COMPANY if profile and profile.company_name else Appearance.NAMED,
            idempotency_key=idempotency_key,
            has_redirect_consent=True,  # an over-payment goes where most needed (module doc)
            min_vnd=amount if whole_by_bank else None,
        )
        if not created and MatchSettlement.objects.filter(donation=donation).exists():
            return donation.match_settlement
        if not created:
            # The key was used for an ordinary gift: never turn that gift into a settlement.
            raise ApplicationError(_("This form was already used; reload the page."), code="idempotency_reused")
        return MatchSettlement.objects.create(offer=offer, donation=donation, created_by=by)


def _settled_by(donation_id: int) -> tuple[int, int]:
    """(money the gift moved into match_pledges so far, how many such postings)."""
    agg = LedgerEntry.objects.filter(
        transaction__donation_id=donation_id, transaction__kind=KIND, account=Account.DONOR_FUNDS
    ).aggregate(s=Sum("amount"))
    count = LedgerTransaction.objects.filter(donation_id=donation_id, kind=KIND).count()
    return agg["s"] or 0, count


def settlement_sync(*, donation: Donation) -> int:
    """Inside the payment path's transaction, with the gift locked: if it settles an offer, move
    its money into match_pledges up to what the offer owes (or back, after a refund). Returns
    the amount moved (negative: moved back); 0 for any other gift or when nothing changed."""
    from .unmatch import gift_cleared_money

    s = MatchSettlement.objects.filter(donation_id=donation.pk).first()
    if s is None:
        return 0
    offer_id = MatchOffer.objects.select_for_update().values_list("pk", flat=True).get(pk=s.offer_id)
    settled, count = _settled_by(donation.pk)
    money = gift_cleared_money(donation.pk) + settled  # what the gift brought, net of refunds
    owed_without_this = offers_owed([offer_id])[offer_id]["owed"] + settled
    target = max(0, min(money, owed_without_this))
    delta = target - settled
    if delta == 0:
        return 0
    fund = donation.fund_key
    entries = (
        [debit(Account.DONOR_FUNDS, delta, fund), credit(Account.MATCH_PLEDGES, delta)]
        if delta > 0
        else [debit(Account.MATCH_PLEDGES, -delta), credit(Account.DONOR_FUNDS, -delta, fund)]
    )
    # Keyed by the gift and the posting's sequence number: the gift's row lock orders them, a
    # replay recomputes delta 0 and posts nothing.
    ledger_post(
        key=f"{KIND}:{donation.pk}:{count + 1}",
        kind=KIND,
        donation=donation,
        memo=f"match pledge settlement {donation.reference} (offer {offer_id})",
        entries=entries,
    )
    return delta


def settlements_paid(donation_ids) -> None:
    """Bulk payment paths (statement lines, the Stripe inbox): the gifts are locked by the
    caller; sync those that settle an offer (one indexed lookup for the whole batch)."""
    # `= ANY(array)`, not `__in`: a statement batch passes 20,000 ids, which `__in` sends as
    # 20,000 parameters (≈0.25 s per batch against a few ms).
    with connection.cursor() as cur:
        cur.execute(
            "SELECT donation_id FROM sponsorship_matchsettlement WHERE donation_id = ANY(%s) ORDER BY donation_id",
            [list(donation_ids)],
        )
        ids = [d for (d,) in cur.fetchall()]
    if not ids:
        return
    for donation in Donation.objects.select_for_update().filter(pk__in=ids).order_by("pk"):
        settlement_sync(donation=donation)


def offer_settlements(*, offer: MatchOffer):
    """The offer's settlements, newest first, with each gift's money (for the offers page)."""
    return (
        MatchSettlement.objects.filter(offer=offer)
        .select_related("donation")
        .annotate(received=F("donation__amount_received_vnd"))
        .order_by("-created_at")
    )
