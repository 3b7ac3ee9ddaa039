"""Unrestricted money across provinces: it goes where the national priority order says, not to
whichever province's run comes first.

Each province shard is matched on its own (one transaction per shard, many workers), and every
shard's run stages the money given for "anywhere". Left to itself, the first shard to run would
spend it on its own queue, however far down the national order its households are. So every
run publishes its queue's demand curve (`MatchingDemand`: donor shares waiting, by household
score), and spends unrestricted money only on households whose score reaches the national
cutoff: the score at which the curves of all provinces together need all the unrestricted money
there is. A province whose households rank lower leaves the money for the others' runs (the
fan-out runs every province, and beat repeats it every 30 s); money is never lost, at worst it
waits a round.

What it does not cover: a province that has never published a curve for the product (or not
within CHUNGTAY_MATCHING_DEMAND_MAX_AGE_SECONDS) counts as needing nothing, so the very first
round after a queue appears behaves as before; curves count needs that the province's own
restricted money will fund (money then waits a round longer than it must, never the other way);
money restricted to a group but not to a place is not covered (it is rare, and its demand
would need a curve per group).
"""

from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.utils import timezone

from .models import MatchingDemand

# The queue as the run sees it (mneed: one row per waiting member, its household's score), as
# (score rounded to 0.1, donor shares waiting) per score, highest first. Every member row carries
# its household's score, so the members' shares are summed by score directly (grouping by
# household first cost a third of a run's bookkeeping statements at a million members).
CURVE_SQL = """
SELECT round(score, 1) AS s, SUM(donor_share)::bigint FROM mneed WHERE {which} GROUP BY 1 ORDER BY 1 DESC
"""

# Unrestricted money this run holds (mfund: the gifts it could lock, with what each has left):
# given for anywhere, for this product or any, for no particular group.
UNRESTRICTED = "locality_id IS NULL AND grp = '' AND product IN ('', %(product)s) AND avail > 0"


def _curve(cur, which: str) -> dict[Decimal, int]:
    cur.execute(CURVE_SQL.format(which=which))
    return {Decimal(s): int(n) for s, n in cur.fetchall()}


class QueueDemand:
    """One run's part: publish the province's queue and compute the cutoff at the moment the
    run reaches its unrestricted money (`cutoff`, called by the pairing before the first class
    of money for anywhere: by then the province's own restricted money has funded what it
    could, and the queue is what is left for everyone's money), then publish what the run left
    (`finish`). One scan of the queue per run; what the run funds is read from its funded rows."""

    def __init__(self, cur, *, province_id: int, product: str):
        self.cur, self.province_id, self.product = cur, province_id, product
        self.value: Decimal | None = None  # the cutoff, recorded on the run
        self._published: dict[Decimal, int] | None = None
        self._funded_then: dict[Decimal, int] = {}

    def cutoff(self) -> Decimal | None:
        if self._published is None:
            self._funded_then = _curve(self.cur, "funded")
            self._published = self._publish(_curve(self.cur, "NOT funded"))
            self.value = unrestricted_cutoff(self.cur, product=self.product)
        return self.value

    def finish(self) -> None:
        if self._published is None:
            self._publish(_curve(self.cur, "NOT funded"))
            return
        curve = dict(self._published)
        for score, amount in _curve(self.cur, "funded").items():
            curve[score] = curve.get(score, 0) - (amount - self._funded_then.get(score, 0))
        if curve != self._published:
            self._publish(curve)

    def _publish(self, curve: dict[Decimal, int]) -> dict[Decimal, int]:
        curve = {s: n for s, n in curve.items() if n > 0}
        MatchingDemand.objects.update_or_create(
            province_id=self.province_id,
            product=self.product,
            defaults={"curve": [[str(s), n] for s, n in sorted(curve.items(), reverse=True)]},
        )
        return curve


def unrestricted_cutoff(cur, *, product: str) -> Decimal | None:
    """The lowest household score this run may fund with unrestricted money, or None (no such
    money, or enough of it for every province's queue), from the queues published (this
    province's just now)."""
    cur.execute(f"SELECT COALESCE(SUM(avail), 0) FROM mfund WHERE {UNRESTRICTED}", {"product": product})
    money = cur.fetchone()[0]
    if not money:
        return None
    fresh = timezone.now() - timedelta(seconds=settings.CHUNGTAY_MATCHING_DEMAND_MAX_AGE_SECONDS)
    need: dict[Decimal, int] = {}
    for curve in MatchingDemand.objects.filter(product=product, updated_at__gte=fresh).values_list("curve", flat=True):
        for score, amount in curve:
            need[Decimal(score)] = need.get(Decimal(score), 0) + amount
    covered = 0
    scores = sorted(need, reverse=True)
    for score in scores[:-1]:  # reaching the lowest score excludes nobody: no cutoff
        covered += need[score]
        if covered >= money:
            return score
    return None
