"""Ledger invariants under random sequences (hypothesis stateful): gifts, refunds (full and
partial), disputes (opened, won, lost), matching runs, agency rejections (un-matching) and
remittances (batch paid), all through the real services (`donation_create`, the Stripe event
applier `apply_event`, `match_province`, the batch and card services). After every step
`check_invariants()` must report exactly what the model predicts and the model's balances per
fund must equal the ledger's. Every example runs in one transaction that is rolled back, so it
can run against the development database. `--steps` is the total (at least; whole examples).

The same machine is the CI test (tests/reliability/test_ledger_machine.py, fewer steps)."""

import itertools
import time
import uuid
from collections import Counter
from datetime import date

from django.db import transaction
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

PERIOD = date(2026, 1, 1)
AMOUNTS = [100_000, 250_000, 379_080, 500_000, 758_160, 1_000_000, 2_000_000]
_pid = itertools.count(int(time.time()) % 10_000_000 * 10)
STATS = Counter()


def add_arguments(parser):
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--steps-per-example", type=int, default=100)
    parser.add_argument("--seed", type=int, default=None)


def _province():
    """A province without registry members (demo data lives elsewhere), with two communes."""
    from beneficiaries.models import Level, Locality, Member, Scheme

    used = set(Member.objects.values_list("locality__province_id", flat=True).distinct())
    for p in Locality.objects.filter(scheme=Scheme.CURRENT, level=Level.PROVINCE).order_by("-code"):
        if p.pk in used:
            continue
        communes = list(Locality.objects.filter(level=Level.COMMUNE, province=p).order_by("code")[:2])
        if len(communes) == 2:
            return p, communes
    raise RuntimeError("no province without members and with two communes")


class LedgerMachine(RuleBasedStateMachine):
    """Model: per gift what Stripe says was received, refunded and disputed; per card whether
    the agency rejected it and whether its batch was paid. Allocations are the matcher's
    choice, read back from its Allocation rows (a table the ledger does not use), so the ledger
    is checked against an independent record of where the money went."""

    province = None
    communes = None
    nested = False  # True under pytest, where the test's transaction is already open

    def __init__(self):
        super().__init__()
        from beneficiaries.pricing_seed import seed_pricing
        from donors.models import Role, User
        from sponsorship.services import ledger

        if LedgerMachine.province is None:
            seed_pricing()
            LedgerMachine.province, LedgerMachine.communes = _province()
        self._atomic = transaction.atomic()
        self._atomic.__enter__()
        if not getattr(LedgerMachine, "nested", False):
            # One snapshot per example: other processes writing to the same database (a load
            # run, the platform) do not move this example's numbers between two checks.
            from django.db import connection

            with connection.cursor() as cur:
                cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        self.tag = uuid.uuid4().hex[:10]
        self.donor = User.objects.create_user(f"ledger-{self.tag}@chungtay.invalid", None, role=Role.DONOR)
        self.finance = User.objects.create_user(f"ledger-fin-{self.tag}@chungtay.invalid", None, role=Role.FINANCE)
        self.gifts = {}  # donation id -> dict(fund, amount, fee, refunded, disputes{id: (amount, status)}, pi)
        self.events = []  # every event applied, for replays
        self.rejected = set()  # card ids
        self.remitted = set()  # card ids in paid batches
        self.batches = set()  # paid batch ids
        self.baseline_problems = set(ledger.check_invariants())
        self.seq = itertools.count(1)

    def teardown(self):
        transaction.set_rollback(True)
        self._atomic.__exit__(None, None, None)

    # --- helpers ---------------------------------------------------------------------------
    def _apply(self, event_type: str, obj: dict) -> None:
        from sponsorship.services.stripe_events import apply_event

        event = {"id": f"evt_{self.tag}_{next(self.seq)}", "type": event_type, "data": {"object": obj}}
        apply_event(event)
        self.events.append(event)
        STATS[event_type] += 1

    def _open_amount(self, g) -> int:
        """What Stripe still holds of a gift: received − refunded − disputes not won."""
        lost = sum(a for a, s in g["disputes"].values() if s != "won")
        return g["amount"] - g["refunded"] - lost

    # --- rules -----------------------------------------------------------------------------
    @initialize()
    def seed_households(self):
        for _ in range(3):
            self.register_household(size=2, commune=0)

    @rule(size=st.integers(1, 3), commune=st.integers(0, 1))
    def register_household(self, size, commune):
        from beneficiaries.models import Household, Member, MemberStatus, Relation

        locality = self.communes[commune]
        hh = Household.objects.create(
            locality=locality, external_ref=f"L{self.tag}{next(self.seq)}", poverty_class="near_poor"
        )
        for i in range(size):
            n = next(_pid) % 10**11
            Member.objects.create(
                household=hh,
                locality=locality,
                full_name=f"Người {n}",
                name_ascii=f"nguoi {n}",
                date_of_birth=date(1980 + i, 1, 1),
                sex="male",
                personal_id=f"9{n:011d}",
                relation=Relation.HEAD if i == 0 else Relation.CHILD,
                status=MemberStatus.APPROVED,
            )
        STATS["household"] += 1

    @rule(amount=st.sampled_from(AMOUNTS), where=st.sampled_from(["province", "commune"]), fee_pct=st.integers(0, 3))
    def give(self, amount, where, fee_pct):
        from sponsorship.services.donations import donation_create

        locality = self.province if where == "province" else self.communes[0]
        d, _ = donation_create(
            donor=self.donor, method="card", amount_vnd=amount, locality=locality, campaign=f"rel{self.tag}"
        )
        fee = amount * fee_pct // 100
        pi = {
            "id": f"pi_{self.tag}_{d.pk}",
            "object": "payment_intent",
            "amount": amount,
            "amount_received": amount,
            "currency": "vnd",
            "status": "succeeded",
            "metadata": {"donation_id": str(d.pk)},
            "latest_charge": {"id": f"ch_{self.tag}_{d.pk}", "balance_transaction": {"fee": fee}},
        }
        self._apply("payment_intent.succeeded", pi)
        self.gifts[d.pk] = {
            "fund": d.fund_key, "amount": amount, "fee": fee, "refunded": 0, "disputes": {}, "pi": pi["id"],
        }  # fmt: skip

    def _refundable(self):
        return [k for k, g in self.gifts.items() if not g["disputes"] and self._open_amount(g) > 0]

    @precondition(lambda self: self._refundable())
    @rule(data=st.data(), full=st.booleans())
    def refund(self, data, full):
        gift_id = data.draw(st.sampled_from(sorted(self._refundable())))
        g = self.gifts[gift_id]
        left = self._open_amount(g)
        amount = left if full else data.draw(st.integers(1, left))
        self._apply(
            "refund.created",
            {
                "id": f"re_{self.tag}_{next(self.seq)}",
                "object": "refund",
                "amount": amount,
                "status": "succeeded",
                "payment_intent": g["pi"],
                "metadata": {"donation_id": str(gift_id)},
            },
        )
        g["refunded"] += amount
        STATS["refund_full" if full else "refund_partial"] += 1

    def _disputable(self):
        return [k for k, g in self.gifts.items() if not g["disputes"] and self._open_amount(g) > 0]

    @precondition(lambda self: self._disputable())
    @rule(data=st.data())
    def dispute_open(self, data):
        gift_id = data.draw(st.sampled_from(sorted(self._disputable())))
        g = self.gifts[gift_id]
        amount = self._open_amount(g)
        dp = f"dp_{self.tag}_{next(self.seq)}"
        obj = {"id": dp, "object": "dispute", "amount": amount, "status": "needs_response", "payment_intent": g["pi"]}
        obj["charge"] = f"ch_{self.tag}_{gift_id}"
        self._apply("charge.dispute.created", obj)
        g["disputes"][dp] = (amount, "open")

    def _open_disputes(self):
        return [(k, dp) for k, g in self.gifts.items() for dp, (_a, s) in g["disputes"].items() if s == "open"]

    @precondition(lambda self: self._open_disputes())
    @rule(data=st.data(), won=st.booleans())
    def dispute_close(self, data, won):
        gift_id, dp = data.draw(st.sampled_from(sorted(self._open_disputes())))
        g = self.gifts[gift_id]
        amount = g["disputes"][dp][0]
        status = "won" if won else "lost"
        obj = {"id": dp, "object": "dispute", "amount": amount, "status": status, "payment_intent": g["pi"]}
        obj["charge"] = f"ch_{self.tag}_{gift_id}"
        self._apply("charge.dispute.closed", obj)
        g["disputes"][dp] = (amount, status)
        STATS[f"dispute_{status}"] += 1

    @precondition(lambda self: self.events)
    @rule(data=st.data())
    def replay_event(self, data):
        """Stripe delivers again: any earlier event, applied again, changes nothing."""
        from sponsorship.services.stripe_events import apply_event

        apply_event(data.draw(st.sampled_from(self.events)))
        STATS["replay"] += 1

    @rule()
    def match(self):
        from sponsorship.matching.services import match_province

        match_province(province_id=self.province.pk, period_start=PERIOD)
        STATS["match"] += 1

    def _cards(self, *statuses):
        from sponsorship.card_models import Card

        return list(
            Card.objects.filter(locality__in=self.communes, status__in=statuses)
            .order_by("pk")
            .values_list("pk", flat=True)
        )

    @precondition(lambda self: self._cards("funded"))
    @rule(commune=st.integers(0, 1), pay=st.booleans())
    def submit_batch(self, commune, pay):
        """A batch of the commune's funded cards is listed and submitted to the agency."""
        from config.exceptions import ApplicationError
        from sponsorship.enrollment.batches import batch_create, batch_submit

        try:
            batch = batch_create(
                locality=self.communes[commune], product="hi_household", period=PERIOD, by=self.finance
            )
        except ApplicationError:
            return  # nothing funded in that commune
        batch_submit(batch_id=batch.pk, by=self.finance)
        STATS["batch_submitted"] += 1
        if pay:
            self._remit(batch)

    def _remit(self, batch):
        from sponsorship.enrollment.batches import batch_mark_paid

        batch_mark_paid(batch_id=batch.pk, by=self.finance)
        self.remitted |= set(batch.items.filter(is_live=True).values_list("card_id", flat=True))
        self.batches.add(batch.pk)
        STATS["remit"] += 1

    @precondition(lambda self: self._submitted_batches())
    @rule(data=st.data())
    def remit(self, data):
        """Finance marks a submitted batch paid: its cards' money goes to the agency."""
        self._remit(data.draw(st.sampled_from(self._submitted_batches())))

    def _submitted_batches(self):
        from sponsorship.enrollment.models import AgencyBatch

        return list(AgencyBatch.objects.filter(locality__in=self.communes, status="submitted").order_by("pk"))

    @precondition(lambda self: self._cards("submitted"))
    @rule(data=st.data())
    def agency_rejects(self, data):
        """The agency's card list rejects a submitted card: its money goes back to the pool."""
        from sponsorship.card_models import Card, CardStatus
        from sponsorship.enrollment.batches import card_reject_refund
        from sponsorship.services.cards import card_transition

        card_id = data.draw(st.sampled_from(self._cards("submitted")))
        card = card_transition(card_id=card_id, to=CardStatus.REJECTED, reason="sai thông tin", rejection_reason="x")
        card_reject_refund(card=Card.objects.get(pk=card.pk))
        self.rejected.add(card_id)
        STATS["reject"] += 1

    # --- invariants ------------------------------------------------------------------------
    @invariant()
    def books_agree_with_the_model(self):
        if not hasattr(self, "gifts"):
            return
        from django.db.models import Sum

        from sponsorship.card_models import Card, CardStatus
        from sponsorship.matching.models import Allocation
        from sponsorship.models import Donation
        from sponsorship.services import ledger

        STATS["checks"] += 1
        funds = ledger.fund_balances("donor_funds")
        allocated = ledger.fund_balances("allocated_to_cards")
        expected_problems = set()
        for fund in {g["fund"] for g in self.gifts.values()}:
            net = sum(self._open_amount(g) for g in self.gifts.values() if g["fund"] == fund)
            # A refund or dispute un-matches cards not yet sent: their money is back in the fund.
            live = (
                Allocation.objects.filter(fund=fund)
                .exclude(card_id__in=self.rejected)
                .exclude(card__status=CardStatus.UNMATCHED)
            )
            spent = live.aggregate(s=Sum("amount_vnd"))["s"] or 0
            bound = live.exclude(card_id__in=self.remitted).aggregate(s=Sum("amount_vnd"))["s"] or 0
            assert funds.get(fund, 0) == net - spent, (fund, funds.get(fund), net, spent)
            assert allocated.get(fund, 0) == bound, (fund, allocated.get(fund), bound)
            if net - spent < 0:
                # Stripe took back (refund or lost dispute) money already bound to cards: the
                # books must say so (an alarm for finance), not hide it.
                expected_problems.add(("nothing_negative", f"donor_funds[{fund}] is negative: {net - spent} VND"))
        # Totals of this machine's own postings (another process may use the same database).
        from sponsorship.models import LedgerEntry

        mine = dict(
            LedgerEntry.objects.filter(transaction__donation__donor=self.donor)
            .values_list("account")
            .annotate(s=Sum("amount"))
            .values_list("account", "s")
        )
        received = sum(g["amount"] for g in self.gifts.values())
        fees = sum(g["fee"] for g in self.gifts.values())
        out = sum(g["amount"] - self._open_amount(g) for g in self.gifts.values())
        assert mine.get("fees", 0) == fees
        assert mine.get("stripe_clearing", 0) == received - fees - out
        assert mine.get("refunds", 0) == 0  # every refund here is settled
        keys = [f"remit:batch:{b}" for b in self.batches] + [f"reject:card:{c}" for c in self.rejected]
        remitted_ledger = -(
            LedgerEntry.objects.filter(transaction__key__in=keys, account="remitted_to_agency").aggregate(
                s=Sum("amount")
            )["s"]
            or 0
        )
        remitted = Allocation.objects.filter(card_id__in=self.remitted - self.rejected).aggregate(s=Sum("amount_vnd"))
        assert remitted_ledger == (remitted["s"] or 0)
        problems = set(ledger.check_invariants()) - self.baseline_problems
        if not expected_problems:
            assert problems == set(), problems
        else:
            assert {p for p in problems if p[0] != "nothing_negative"} == set(), problems
            assert expected_problems <= problems, (expected_problems, problems)
        for pk, received_vnd, refunded_vnd in Donation.objects.filter(pk__in=self.gifts).values_list(
            "pk", "amount_received_vnd", "amount_refunded_vnd"
        ):
            assert received_vnd == self.gifts[pk]["amount"]
            assert refunded_vnd == self.gifts[pk]["refunded"]
        # Each live card is paid exactly its donor share, by allocations that still exist; a
        # rejected or un-matched card gave its money back and holds none.
        for card_id, status, share, paid in (
            Card.objects.filter(locality__in=self.communes)
            .annotate(paid=Sum("allocations__amount_vnd"))
            .values_list("pk", "status", "donor_share_vnd", "paid")
        ):
            if status in (CardStatus.REJECTED, CardStatus.UNMATCHED):
                assert paid is None, (card_id, status, paid)
            else:
                assert paid == share, (card_id, share, paid)


def machine_settings(steps_per_example: int, examples: int, seed=None):
    return settings(
        max_examples=examples,
        stateful_step_count=steps_per_example,
        deadline=None,
        database=None,
        derandomize=seed is not None,  # --seed: the same sequences every time
        phases=[Phase.generate],  # shrinking a 100-step failure would take long; the trace is printed
        suppress_health_check=list(HealthCheck),
    )


def run_machine(*, steps: int, steps_per_example: int, seed=None) -> dict:
    """One hypothesis run with enough examples for `steps` (examples end at random lengths;
    a short run is topped up). Separate runs of one example each would all be the simplest
    example; one run of many explores."""
    import math

    from hypothesis.stateful import run_state_machine_as_test

    STATS.clear()
    t0 = time.perf_counter()
    examples = 0
    while STATS["checks"] < steps:
        want = max(1, math.ceil((steps - STATS["checks"]) / (0.8 * steps_per_example)))
        run_state_machine_as_test(LedgerMachine, settings=machine_settings(steps_per_example, want, seed))
        examples += want
    seconds = time.perf_counter() - t0
    STATS["steps"] = STATS["checks"]
    return {"steps": STATS["steps"], "examples": examples, "seconds": round(seconds, 1), "stats": dict(STATS)}


def run(options, out) -> dict:
    out.write(f"running the ledger state machine for {options['steps']:,} steps…\n")
    figures = run_machine(
        steps=options["steps"], steps_per_example=options["steps_per_example"], seed=options.get("seed")
    )
    figures["steps_per_s"] = round(figures["steps"] / max(figures["seconds"], 1e-9), 1)
    figures["invariant_failures"] = 0  # any failure raises with the step trace
    return figures


def rows(figures: dict) -> list[tuple[str, str]]:
    s = figures["stats"]
    return [
        ("steps (invariants checked after each)", f"{figures['steps']:,} in {figures['examples']} examples"),
        ("time", f"{figures['seconds']} s ({figures['steps_per_s']} steps/s)"),
        ("gifts / replays", f"{s.get('payment_intent.succeeded', 0):,} / {s.get('replay', 0):,}"),
        ("refunds full / partial", f"{s.get('refund_full', 0):,} / {s.get('refund_partial', 0):,}"),
        (
            "disputes opened / won / lost",
            f"{s.get('charge.dispute.created', 0):,} / {s.get('dispute_won', 0):,} / {s.get('dispute_lost', 0):,}",
        ),
        ("matching runs / households", f"{s.get('match', 0):,} / {s.get('household', 0):,}"),
        (
            "batches submitted / remitted / cards rejected",
            f"{s.get('batch_submitted', 0):,} / {s.get('remit', 0):,} / {s.get('reject', 0):,}",
        ),
        ("invariant failures", "0"),
    ]
