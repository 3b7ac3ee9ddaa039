"""Stripe reconciliation against the raw SDK paging rate (goal: at least 50 %).

Starts a private localstripe emulator, seeds N succeeded PaymentIntents for N card gifts
(through the emulator's seeding hook, config.stripe_emulator.seed_payment_intents),
records 99 % of them as the webhook path would have (bulk ledger postings) and leaves 1 %
missed. Then, over the same data in the same run: the raw SDK `auto_paging_iter()` rate, and
the reconciler's PaymentIntent pass (which must also repair the missed 1 %). Cleans up."""

from django.conf import settings
from django.db import connection, transaction

from config import stripe_emulator

from .report import Stopwatch

BENCH_EMAIL = "bench-reconcile@chungtay.invalid"


def add_arguments(parser):
    parser.add_argument("--intents", type=int, default=10_000)
    parser.add_argument("--missed-every", type=int, default=100, help="one in N has no webhook")
    parser.add_argument("--batch", type=int, default=100)


def _cleanup():
    from donors.models import User

    user = User.objects.filter(email=BENCH_EMAIL).first()
    if user is None:
        return
    with transaction.atomic(), connection.cursor() as cur:
        ids = "(SELECT id FROM sponsorship_donation WHERE donor_id = %s)"
        cur.execute(
            "DELETE FROM sponsorship_ledgerentry WHERE transaction_id IN "
            f"(SELECT id FROM sponsorship_ledgertransaction WHERE donation_id IN {ids})",
            [user.pk],
        )
        cur.execute(f"DELETE FROM sponsorship_ledgertransaction WHERE donation_id IN {ids}", [user.pk])
        cur.execute(f"DELETE FROM sponsorship_donationhistory WHERE donation_id IN {ids}", [user.pk])
        cur.execute(f"DELETE FROM sponsorship_discrepancy WHERE donation_id IN {ids}", [user.pk])
        cur.execute(f"DELETE FROM sponsorship_receipt WHERE donation_id IN {ids}", [user.pk])
        cur.execute("DELETE FROM sponsorship_donation WHERE donor_id = %s", [user.pk])
        cur.execute("DELETE FROM sponsorship_reconcilecursor WHERE name LIKE 'bench:%%'")
        user.delete()


def run(options, out) -> dict:
    from donors.models import Role, User
    from sponsorship import stripe_client
    from sponsorship.models import Account, Donation, LedgerEntry, LedgerTransaction, Method, ReconcileCursor
    from sponsorship.services import reconcile
    from sponsorship.services.donations import fund_key, new_reference

    n = options["intents"]
    _cleanup()
    proc, base = stripe_emulator.spawn()
    saved = (settings.STRIPE_API_BASE, settings.STRIPE_SECRET_KEY)
    settings.STRIPE_API_BASE, settings.STRIPE_SECRET_KEY = base, "sk_test_bench"
    user = User.objects.create_user(BENCH_EMAIL, None, role=Role.DONOR, full_name="benchmark")
    try:
        donations = Donation.objects.bulk_create(
            [
                Donation(
                    donor=user,
                    method=Method.CARD,
                    amount_vnd=379_080,
                    appearance="named",
                    reference=new_reference(),
                    fund_key=fund_key(),
                )
                for _ in range(n)
            ],
            batch_size=5000,
        )
        out.write(f"creating {n:,} PaymentIntents in the emulator…\n")
        # Seeded inside the emulator's process (its own PaymentIntent create + confirm, one
        # request per 1,000): 10,000 HTTP creates would take minutes and measure nothing.
        pis = []
        for start in range(0, n, 1000):
            chunk = donations[start : start + 1000]
            ids = stripe_emulator.seed_payment_intents(
                base,
                [{"amount": d.amount_vnd, "currency": "vnd", "metadata": {"donation_id": str(d.pk)}} for d in chunk],
            )
            pis.extend(zip(chunk, ids, strict=True))
        recorded = [(d, pi) for i, (d, pi) in enumerate(pis) if i % options["missed_every"]]
        Donation.objects.filter(pk__in=[d.pk for d, _ in recorded]).update(
            status="succeeded", amount_received_vnd=379_080
        )
        txs = LedgerTransaction.objects.bulk_create(
            [LedgerTransaction(key=f"card_paid:{pi}", kind="card_paid", donation=d) for d, pi in recorded],
            batch_size=5000,
        )
        LedgerEntry.objects.bulk_create(
            [
                e
                for tx in txs
                for e in (
                    LedgerEntry(transaction=tx, account=Account.STRIPE_CLEARING, amount=379_080),
                    LedgerEntry(transaction=tx, account=Account.DONOR_FUNDS, fund=fund_key(), amount=-379_080),
                )
            ],
            batch_size=10_000,
        )
        out.write("raw SDK paging…\n")
        with Stopwatch() as raw:
            raw_count = sum(1 for _ in stripe_client.iter_all_payment_intents())
        out.write("reconciling…\n")
        ReconcileCursor.objects.filter(name="payment_intents").delete()
        with Stopwatch() as rec:
            result = reconcile.reconcile_payment_intents(batch=options["batch"], max_pages=10**6)
        with Stopwatch() as again:
            ReconcileCursor.objects.filter(name="payment_intents").delete()
            second = reconcile.reconcile_payment_intents(batch=options["batch"], max_pages=10**6)
        missed = len(pis) - len(recorded)
        raw_rate = raw_count / raw.seconds
        rec_rate = result["checked"] / rec.seconds
        return {
            "intents": n,
            "missed_webhooks": missed,
            "repaired": result["repaired"],
            "repaired_on_second_run": second["repaired"],
            "raw_sdk_pis_per_s": round(raw_rate, 1),
            "reconcile_pis_per_s": round(rec_rate, 1),
            "second_run_pis_per_s": round(result["checked"] / again.seconds, 1),
            "ratio": round(rec_rate / raw_rate, 3),
            "goal_ratio": 0.5,
            "goal_met": rec_rate / raw_rate >= 0.5 and result["repaired"] == missed,
        }
    finally:
        settings.STRIPE_API_BASE, settings.STRIPE_SECRET_KEY = saved
        ReconcileCursor.objects.filter(name="payment_intents").delete()
        _cleanup()
        proc.terminate()
        proc.wait(timeout=5)


def rows(figures: dict) -> list[tuple[str, str]]:
    return [
        ("PaymentIntents", f"{figures['intents']:,}"),
        ("missed webhooks / repaired", f"{figures['missed_webhooks']} / {figures['repaired']}"),
        ("raw SDK paging (PIs/s)", f"{figures['raw_sdk_pis_per_s']:,.0f}"),
        ("reconciler (PIs/s)", f"{figures['reconcile_pis_per_s']:,.0f}"),
        ("ratio (goal ≥ 0.5)", f"{figures['ratio']:.2f}"),
        ("second run repairs", str(figures["repaired_on_second_run"])),
    ]
