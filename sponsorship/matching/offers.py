"""Corporate match offers: a business pledges to match individual gifts at a ratio (1:1 or
another) up to a cap, optionally only for gifts to localities it chose.

When an individual gift's money clears (hooks.money_recomputed / gifts_paid → after commit,
the task `apply_match_offers`; beat sweeps every CHUNGTAY_OFFERS_SWEEP_SECONDS for anything
missed), each applicable offer creates, once per (offer, gift):
- a matched gift (Donation, method `match`, donor = the business, the same locality, product,
  group and campaign as the individual gift, hence the same fund), paid at once;
- its ledger posting `match_pledged:<offer>:<gift>`: Dr match_pledges (what the business owes)
  / Cr donor_funds[fund], kind `match_pledged`, attributed to the matched gift — from there the
  matcher treats it as any other cleared gift of that fund;
- an OfferMatch row (unique per offer and gift).

The cap is never exceeded, whatever the concurrency: the offer's `used_vnd` grows by one
conditional UPDATE that takes at most what is left (row lock; a second worker waits and sees
the new total), with a CHECK constraint (used ≤ cap) as the last line of defence. The amount
matched is the gift's money still cleared (received − refunded) × ratio, rounded down.
"""

import logging
from decimal import ROUND_DOWN, Decimal

from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from ..models import METHOD_MATCH, Account, Appearance, Donation, DonationStatus
from ..services.donations import new_reference, transition
from ..services.ledger import credit, debit, ledger_post
from .feature_models import MatchOffer, OfferMatch

logger = logging.getLogger("sponsorship.matching")

MATCHABLE = (DonationStatus.SUCCEEDED, DonationStatus.PARTIALLY_PAID, DonationStatus.PARTIALLY_REFUNDED)

TAKE_SQL = """
WITH o AS (SELECT id, used_vnd AS old FROM sponsorship_matchoffer WHERE id = %(id)s FOR UPDATE)
UPDATE sponsorship_matchoffer m SET used_vnd = m.used_vnd + LEAST(%(want)s, m.cap_vnd - m.used_vnd)
FROM o WHERE m.id = o.id AND m.is_active AND m.used_vnd < m.cap_vnd
RETURNING m.used_vnd - o.old
"""


def active_offers(now=None):
    now = now or timezone.now()
    return MatchOffer.objects.filter(is_active=True, starts_at__lte=now).filter(
        Q(ends_at__isnull=True) | Q(ends_at__gt=now)
    )


def gift_cleared(*, donation_ids) -> None:
    """Hook: these gifts received money. If any offer is live, match them after commit."""
    ids = list(donation_ids)
    if ids and active_offers().exists():
        from .. import tasks

        transaction.on_commit(lambda: tasks.apply_match_offers.delay(ids))


def _applies(offer: MatchOffer, gift: Donation, locality_ids: set[int]) -> bool:
    if gift.donor_id == offer.business_id or gift.method == METHOD_MATCH:
        return False
    if hasattr(gift, "match_settlement"):
        return False  # a business paying its pledges is not a gift to match
    if not locality_ids:
        return True
    if gift.locality_id is None:
        return False  # unrestricted money may go anywhere; the offer only matches its places
    return gift.locality_id in locality_ids or gift.locality.province_id in locality_ids


def _is_individual(gift: Donation) -> bool:
    profile = getattr(gift.donor, "donor_profile", None)
    return profile is None or profile.kind != "business"


def offer_match_gift(*, offer: MatchOffer, gift: Donation) -> OfferMatch | None:
    """Match one gift by one offer (one transaction). Idempotent: a gift already matched by
    the offer returns None and writes nothing. Returns the OfferMatch, or None."""
    if OfferMatch.objects.filter(offer=offer, source=gift).exists():
        return None
    cleared = gift.amount_received_vnd - gift.amount_refunded_vnd
    want = int((Decimal(cleared) * offer.ratio).to_integral_value(rounding=ROUND_DOWN))
    if want <= 0:
        return None
    try:
        with transaction.atomic():
            with connection.cursor() as cur:
                cur.execute(TAKE_SQL, {"id": offer.pk, "want": want})
                row = cur.fetchone()
            if not row or row[0] <= 0:
                return None  # the cap is reached (or the offer was switched off)
            amount = int(row[0])
            business = offer.business
            profile = getattr(business, "donor_profile", None)
            matched = Donation.objects.create(
                donor=business,
                method=METHOD_MATCH,
                amount_vnd=amount,
                locality=gift.locality,
                product=gift.product,
                beneficiary_group=gift.beneficiary_group,
                campaign=gift.campaign,
                has_redirect_consent=True,  # the business's money follows the gift it matched
                appearance=Appearance.COMPANY if profile and profile.company_name else Appearance.NAMED,
                status=DonationStatus.SUCCEEDED,
                fund_key=gift.fund_key,
                reference=new_reference(),
                amount_received_vnd=amount,
                paid_at=timezone.now(),
            )
            ledger_post(
                key=f"match_pledged:{offer.pk}:{gift.pk}",
                kind="match_pledged",
                donation=matched,
                memo=f"{offer.name}: match of {gift.reference}",
                entries=[debit(Account.MATCH_PLEDGES, amount), credit(Account.DONOR_FUNDS, amount, gift.fund_key)],
            )
            match = OfferMatch.objects.create(offer=offer, source=gift, matched=matched, amount_vnd=amount)
            from . import triggers

            triggers.money_cleared(donation_ids=[matched.pk])
            return match
    except IntegrityError:
        # A concurrent worker matched the same gift first (unique offer+gift): its
        # transaction took the cap share, ours rolled back.
        return None


def offers_apply(*, donation_ids=None, limit: int = 500) -> int:
    """Match cleared individual gifts by every live offer that applies. `donation_ids`: the
    gifts that just cleared; None (beat sweep): recent paid gifts not yet matched. Returns
    how many matches were made. Safe to run twice and concurrently."""
    offers = list(active_offers().prefetch_related("localities").select_related("business"))
    if not offers:
        return 0
    made = 0
    for offer in offers:
        localities = {loc.pk for loc in offer.localities.all()}
        gifts = Donation.objects.filter(status__in=MATCHABLE, paid_at__gte=offer.starts_at).exclude(method=METHOD_MATCH)
        if donation_ids is not None:
            gifts = gifts.filter(pk__in=list(donation_ids))
        # Filtered in SQL as far as possible, so a batch never fills up with gifts the offer
        # cannot match (the sweep would otherwise stall on them).
        gifts = gifts.exclude(offer_matches__offer=offer).exclude(donor=offer.business_id)
        gifts = gifts.exclude(donor__donor_profile__kind="business").filter(match_settlement__isnull=True)
        if localities:
            gifts = gifts.filter(Q(locality_id__in=localities) | Q(locality__province_id__in=localities))
        gifts = gifts.select_related("locality", "donor__donor_profile", "match_settlement")
        for gift in gifts.order_by("paid_at", "id")[:limit]:
            if _applies(offer, gift, localities) and _is_individual(gift):
                if offer_match_gift(offer=offer, gift=gift):
                    made += 1
    return made


def _target(m: OfferMatch, money: int) -> int:
    """What a match is worth while its gift has `money`: money × ratio, rounded down, never
    above the match first made."""
    return min(m.amount_vnd, int((Decimal(money) * m.offer.ratio).to_integral_value(rounding=ROUND_DOWN)))


def _matched_gift_follows(m: OfferMatch, matched: Donation, note: str) -> None:
    """The matched gift's refunded amount and status follow what its match has given back."""
    matched.amount_refunded_vnd = m.returned_vnd
    if m.returned_vnd >= matched.amount_received_vnd:
        status = DonationStatus.REFUNDED
    else:
        status = DonationStatus.PARTIALLY_REFUNDED if m.returned_vnd else DonationStatus.SUCCEEDED
    transition(matched, status, note)
    matched.save(update_fields=["amount_refunded_vnd", "status"])


def matches_shrink(*, source: Donation) -> list[OfferMatch]:
    """A matched gift lost money (refund, partial refund, dispute lost; `source` is locked by
    the payment path): each match it produced shrinks in proportion. For what is given back:
    the offer's cap share (`used_vnd`) returns, the ledger reverses the pledge
    (Dr donor_funds[the matched gift's fund] / Cr match_pledges, kind `match_reduced`,
    attributed to the matched gift), and the matched gift's cards are un-matched by the same
    rules as for any refund (unmatch.release_excess: cards not sent go back to the queue, sent
    ones are flagged). The target is recomputed from the ledger (the gift's money now × ratio,
    never above the original match), so the same refund event twice gives back nothing more.
    If the gift gets its money back (a dispute won), `matches_regrow` undoes this. Returns the
    matches that shrank."""
    from . import unmatch

    shrunk = []
    money = max(unmatch.gift_cleared_money(source.pk), 0)
    for m in OfferMatch.objects.select_for_update().filter(source=source).select_related("offer").order_by("pk"):
        delta = m.current_vnd - _target(m, money)
        if delta <= 0:
            continue
        with connection.cursor() as cur:
            cur.execute("UPDATE sponsorship_matchoffer SET used_vnd = used_vnd - %s WHERE id = %s", [delta, m.offer_id])
        m.returned_vnd += delta
        m.save(update_fields=["returned_vnd"])
        matched = Donation.objects.select_for_update().get(pk=m.matched_id)
        ledger_post(
            # Keyed by the total ever given back (what is given back now plus what was matched
            # again since): it only grows, so each step has its own key.
            key=f"match_reduced:{m.pk}:{m.returned_vnd + m.restored_vnd}",
            kind="match_reduced",
            donation=matched,
            memo=f"{m.offer.name}: {source.reference} lost money ({source.status})",
            entries=[debit(Account.DONOR_FUNDS, delta, matched.fund_key), credit(Account.MATCH_PLEDGES, delta)],
        )
        _matched_gift_follows(m, matched, f"matched gift {source.reference} lost money")
        unmatch.release_excess(donation=matched)
        shrunk.append(m)
    return shrunk


# Takes up to %(want)s of what is left under the cap, whether or not the offer still matches
# new gifts: the business pledged this match when it matched the gift.
RETAKE_SQL = """
WITH o AS (SELECT id, used_vnd AS old FROM sponsorship_matchoffer WHERE id = %(id)s FOR UPDATE)
UPDATE sponsorship_matchoffer m SET used_vnd = m.used_vnd + LEAST(%(want)s, m.cap_vnd - m.used_vnd)
FROM o WHERE m.id = o.id AND m.used_vnd < m.cap_vnd
RETURNING m.used_vnd - o.old
"""


def matches_regrow(*, source: Donation) -> list[OfferMatch]:
    """A matched gift got money back after its match shrank (a dispute won, funds
    reinstated; `source` is locked by the payment path): each of its matches grows back toward
    the gift's money now × ratio, never above the original match, taking the cap share again
    (as much as is left: offers are first come, first served, and the cap may have gone to
    other gifts meanwhile). The ledger re-posts the pledge (Dr match_pledges / Cr
    donor_funds[the matched gift's fund], kind `match_restored`, attributed to the matched
    gift), and the matched gift is paid again, so the matcher spends it. The target is read
    from the ledger, so the same event twice matches nothing more. Returns the matches that
    grew."""
    from . import triggers, unmatch

    matches = list(
        OfferMatch.objects.select_for_update().filter(source=source, returned_vnd__gt=0).select_related("offer")
        .order_by("pk")
    )  # fmt: skip
    if not matches:
        return []
    grown = []
    money = max(unmatch.gift_cleared_money(source.pk), 0)
    for m in matches:
        want = _target(m, money) - m.current_vnd
        if want <= 0:
            continue
        with connection.cursor() as cur:
            cur.execute(RETAKE_SQL, {"id": m.offer_id, "want": want})
            row = cur.fetchone()
        if not row or row[0] <= 0:
            logger.info("match %s cannot grow back: offer %s has no cap left", m.pk, m.offer_id)
            continue
        delta = int(row[0])
        m.returned_vnd -= delta
        m.restored_vnd += delta
        m.save(update_fields=["returned_vnd", "restored_vnd"])
        matched = Donation.objects.select_for_update().get(pk=m.matched_id)
        ledger_post(
            key=f"match_restored:{m.pk}:{m.restored_vnd}",
            kind="match_restored",
            donation=matched,
            memo=f"{m.offer.name}: {source.reference} got its money back ({source.status})",
            entries=[debit(Account.MATCH_PLEDGES, delta), credit(Account.DONOR_FUNDS, delta, matched.fund_key)],
        )
        _matched_gift_follows(m, matched, f"matched gift {source.reference} got its money back")
        triggers.money_cleared(donation_ids=[matched.pk])
        grown.append(m)
    return grown
