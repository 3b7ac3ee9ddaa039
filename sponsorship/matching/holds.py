"""Holds: a donor who picks a commune or a household keeps that need for themselves while
their money clears (CHUNGTAY_HOLD_CARD_MINUTES for card payments, CHUNGTAY_HOLD_BANK_DAYS for
bank transfers).

In a run (`apply_holds`, called by the matcher through hooks.before_pair, inside the run's
transaction, on its temp tables): for each active, unexpired hold of the province, the held
households (the household; or the commune's highest-priority waiting households whose donor
shares fit in the held amount) are funded first from the holder's own cleared money (a hold
whose gift is cleared and in this run's funds), whole households only; held households the
holder cannot (yet) pay are removed from the run's needs, so nobody else's money takes them.
A hold whose households were all funded by the holder is `consumed`.

`release_expired` (beat) ends holds past their time or whose pledge failed, and asks for a
run of their provinces, which may now fund the freed needs.
"""

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.http import Http404
from django.utils import timezone

from config.exceptions import ApplicationError

from ..models import METHOD_MATCH, DonationStatus, Method
from .feature_models import Hold, HoldStatus

DEAD = (DonationStatus.FAILED, DonationStatus.CANCELED)


def hold_duration(method: str) -> timedelta:
    if method == Method.BANK:
        return timedelta(days=settings.CHUNGTAY_HOLD_BANK_DAYS)
    return timedelta(minutes=settings.CHUNGTAY_HOLD_CARD_MINUTES)


@transaction.atomic
def hold_create(*, donation, household=None, locality=None, by=None) -> Hold:
    """Hold a household (or a commune) for a pledge. Idempotent: a pledge has at most one
    active hold; asking again returns it. Only the pledge's donor may hold for it."""
    from ..models import Donation

    donation = Donation.objects.select_for_update().get(pk=donation.pk)
    if by is not None and donation.donor_id != by.pk:
        raise Http404
    existing = Hold.objects.filter(donation=donation, status=HoldStatus.ACTIVE).first()
    if existing:
        return existing
    if donation.status in DEAD:
        raise ApplicationError("This gift failed or was cancelled.", code="hold_dead_gift")
    if household is not None:
        locality = household.locality
        if donation.locality_id and donation.locality_id not in (locality.pk, locality.province_id):
            raise ApplicationError("This household is outside the place your gift is for.", code="hold_outside")
    if locality is None:
        raise ApplicationError("Choose a commune or a household to hold.", code="hold_target")
    return Hold.objects.create(
        donation=donation,
        household=household,
        locality=None if household is not None else locality,
        province_id=locality.province_id,
        amount_vnd=donation.amount_vnd,
        expires_at=timezone.now() + hold_duration(donation.method),
    )


@transaction.atomic
def hold_pick_household(*, donation, household, by) -> Hold:
    """The donor picked one household of the commune on the sponsor page: it replaces the
    commune hold the pledge took when it was created (`pledge_created`), so the holder's money
    funds that household first. Idempotent (a resubmitted form returns the same hold); a pledge
    that already holds another household keeps it (one active hold per pledge)."""
    from ..models import Donation

    donation = Donation.objects.select_for_update().get(pk=donation.pk)
    if donation.donor_id != by.pk:
        raise Http404
    current = Hold.objects.filter(donation=donation, status=HoldStatus.ACTIVE).first()
    if current is not None and current.household_id is None:
        Hold.objects.filter(pk=current.pk, status=HoldStatus.ACTIVE).update(
            status=HoldStatus.RELEASED, ended_at=timezone.now()
        )
    return hold_create(donation=donation, household=household, by=by)


def pledge_created(donation) -> Hold | None:
    """A pledge restricted to a commune holds that commune's top needs up to its amount."""
    from beneficiaries.models import Level

    if donation.locality_id and donation.locality.level == Level.COMMUNE and donation.method != METHOD_MATCH:
        return hold_create(donation=donation, locality=donation.locality)
    return None


def apply_holds(cur, *, province_id: int, product: str) -> dict:
    """Inside a run (temp tables mneed, mfund, mpair). Returns {"funded": [...], "hidden": n}."""
    now = timezone.now()
    holds = list(
        Hold.objects.filter(province_id=province_id, status=HoldStatus.ACTIVE, expires_at__gt=now)
        .exclude(donation__status__in=DEAD)
        .order_by("created_at", "id")
        .values_list("id", "donation_id", "household_id", "locality_id", "amount_vnd")
    )
    funded_households, hidden, consumed = [], 0, []
    if holds:
        # Each hold looks its households up in the run's needs: one index, only when needed.
        cur.execute("CREATE INDEX IF NOT EXISTS mneed_household ON mneed (household_id)")
    for hold_id, donation_id, household_id, locality_id, amount in holds:
        if household_id:
            cur.execute(
                "SELECT household_id, SUM(donor_share) FROM mneed WHERE NOT funded AND household_id = %s "
                "GROUP BY household_id",
                [household_id],
            )
        else:
            cur.execute(
                "SELECT household_id, SUM(donor_share) FROM mneed WHERE NOT funded AND locality_id = %s "
                "GROUP BY household_id ORDER BY MAX(score) DESC, household_id",
                [locality_id],
            )
        held, total = [], 0
        for hh, share in cur.fetchall():
            if total + share > amount:
                break
            held.append((hh, share))
            total += share
        cur.execute(
            "SELECT avail, fund FROM mfund WHERE donation_id = %s AND avail > 0 AND (product = '' OR product = %s)",
            [donation_id, product],
        )
        row = cur.fetchone()
        avail, fund = (row[0], row[1]) if row else (0, "")
        all_funded = bool(held)
        for hh, share in held:
            if avail >= share:
                cur.execute(
                    "INSERT INTO mpair (donation_id, member_id, fund, amount) "
                    "SELECT %s, member_id, %s, donor_share FROM mneed WHERE household_id = %s AND NOT funded",
                    [donation_id, fund, hh],
                )
                cur.execute("UPDATE mneed SET funded = true WHERE household_id = %s", [hh])
                avail -= share
                funded_households.append(hh)
            else:
                # Held for a holder whose money is not (all) here yet: out of this run.
                cur.execute("DELETE FROM mneed WHERE household_id = %s AND NOT funded", [hh])
                hidden += 1
                all_funded = False
        if row:
            cur.execute("UPDATE mfund SET avail = %s WHERE donation_id = %s", [avail, donation_id])
        if all_funded:
            consumed.append(hold_id)
    if consumed:
        Hold.objects.filter(pk__in=consumed, status=HoldStatus.ACTIVE).update(status=HoldStatus.CONSUMED, ended_at=now)
    return {"funded": funded_households, "hidden": hidden}


def release_expired(*, now=None) -> int:
    """Beat: end holds past their time (or whose pledge failed or was cancelled) and ask for
    a run of their provinces. Guarded in the UPDATE; safe to run twice. Returns how many."""
    from . import triggers

    now = now or timezone.now()
    with transaction.atomic():
        expired = list(
            Hold.objects.filter(status=HoldStatus.ACTIVE, expires_at__lte=now).values_list("pk", "province_id")
        )
        dead = list(
            Hold.objects.filter(status=HoldStatus.ACTIVE, donation__status__in=DEAD).values_list("pk", "province_id")
        )
        n = Hold.objects.filter(pk__in=[p for p, _ in expired], status=HoldStatus.ACTIVE).update(
            status=HoldStatus.EXPIRED, ended_at=now
        )
        n += Hold.objects.filter(pk__in=[p for p, _ in dead], status=HoldStatus.ACTIVE).update(
            status=HoldStatus.RELEASED, ended_at=now
        )
        triggers.provinces_changed({prov for _, prov in expired + dead})
    return n
