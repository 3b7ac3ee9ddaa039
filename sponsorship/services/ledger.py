"""Double-entry ledger in integer VND.

Sign convention: debit positive, credit negative; a transaction's entries sum to zero.
Balances are always derived from entries (no stored balance to drift).

Accounts and flows:
    card paid        Dr stripe_clearing (A−fee), Dr fees fee, Cr donor_funds[fund] A
    bank paid        Dr bank_clearing A, Cr donor_funds[fund] A
    refund recorded  Dr donor_funds[fund] R, Cr refunds R
    refund settled   Dr refunds R, Cr stripe_clearing R
    dispute lost     Dr donor_funds[fund] D, Cr stripe_clearing D (reinstated: the reverse)
    allocation       Dr donor_funds[fund] X, Cr allocated_to_cards[fund] X   (matching issue)
    match pledged    Dr match_pledges M, Cr donor_funds[fund] M               (matching/offers.py)
    match reduced    Dr donor_funds[fund] R, Cr match_pledges R   (the matched gift was refunded)
    match settled    Dr donor_funds[*] S, Cr match_pledges S      (after the settlement's gift is
                     paid: net Dr bank/stripe_clearing, Cr match_pledges; matching/settlement.py)
    remittance       Dr allocated_to_cards[fund] X, Cr remitted_to_agency X  (matching issue)
"""

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.db.models import Sum

from config.exceptions import ApplicationError

from ..models import CREDIT_NORMAL, FUND_ACCOUNTS, Account, LedgerAlarm, LedgerEntry, LedgerTransaction

logger = logging.getLogger("sponsorship.ledger")


@dataclass(frozen=True)
class Entry:
    account: str
    amount: int  # signed: debit > 0, credit < 0
    fund: str = ""


def debit(account: str, amount: int, fund: str = "") -> Entry:
    return Entry(account, int(amount), fund)


def credit(account: str, amount: int, fund: str = "") -> Entry:
    return Entry(account, -int(amount), fund)


def _clean(entries: Iterable[Entry]) -> list[Entry]:
    cleaned = []
    for e in entries:
        if not isinstance(e.amount, int) or isinstance(e.amount, bool):
            raise ApplicationError("Ledger amounts are integer VND.", code="ledger_not_integer")
        if e.account not in Account.values:
            raise ApplicationError(f"Unknown ledger account {e.account!r}.", code="ledger_account")
        if (e.account in FUND_ACCOUNTS) != bool(e.fund):
            raise ApplicationError(f"Account {e.account} needs a fund exactly when it is a fund account.")
        if e.amount:
            cleaned.append(e)
    if len(cleaned) < 2:
        raise ApplicationError("A ledger transaction needs at least two non-zero entries.", code="ledger_empty")
    if sum(e.amount for e in cleaned) != 0:
        raise ApplicationError("Ledger transaction does not balance.", code="ledger_unbalanced")
    return cleaned


def ledger_post(*, key: str, entries: Iterable[Entry], memo: str = "", kind: str = "", donation=None):
    """Write one balanced transaction atomically. Idempotent by `key`: posting the same key
    again returns the existing transaction and writes nothing (a different set of entries
    under a used key raises, because that is a bug, not a retry). Returns (tx, created)."""
    cleaned = _clean(entries)
    existing = LedgerTransaction.objects.filter(key=key).first()
    if existing is not None:
        _assert_same(existing, cleaned)
        return existing, False
    try:
        with transaction.atomic():
            tx = LedgerTransaction.objects.create(
                key=key, kind=kind or key.split(":", 1)[0], memo=memo[:300], donation=donation
            )
            LedgerEntry.objects.bulk_create(
                LedgerEntry(transaction=tx, account=e.account, fund=e.fund, amount=e.amount) for e in cleaned
            )
    except IntegrityError:
        # A concurrent poster won the unique key: that is the same money, written once.
        existing = LedgerTransaction.objects.filter(key=key).first()
        if existing is None:
            raise
        _assert_same(existing, cleaned)
        return existing, False
    return tx, True


# The transactions' ids are drawn from their sequence up front (src is materialised once), so
# the entries take them from src instead of joining the inserted rows back by key.
_TRANSFERS_SQL = """
WITH src AS MATERIALIZED (
    SELECT nextval(%(sequence)s::regclass) AS id, s.*
    FROM unnest(%(keys)s::text[], %(donations)s::bigint[], %(memos)s::text[], %(funds)s::text[],
        %(amounts)s::bigint[]) AS s(key, donation_id, memo, fund, amount)
), tx AS (
    INSERT INTO sponsorship_ledgertransaction (id, key, kind, memo, donation_id, created_at)
    SELECT id, key, %(kind)s, memo, donation_id, now() FROM src
    RETURNING donation_id
), entries AS (
    INSERT INTO sponsorship_ledgerentry (transaction_id, account, fund, amount)
    SELECT src.id, x.account, x.fund, x.amount
    FROM src
    CROSS JOIN LATERAL (VALUES (%(debit)s, CASE WHEN %(debit_fund)s THEN src.fund ELSE '' END, src.amount),
                               (%(credit)s, CASE WHEN %(credit_fund)s THEN src.fund ELSE '' END, -src.amount))
        AS x(account, fund, amount)
    RETURNING transaction_id
)
SELECT (SELECT array_agg(DISTINCT donation_id) FROM tx), (SELECT array_agg(DISTINCT transaction_id) FROM entries)
"""


_SEQUENCES: dict[str, str] = {}


def _transaction_id_sequence(cur) -> str:
    """The sequence behind LedgerTransaction.id (named once per process: a constant in the
    statement, so nextval needs no catalog lookup per row)."""
    from django.db import connection

    alias = connection.settings_dict["NAME"]
    if alias not in _SEQUENCES:
        cur.execute("SELECT pg_get_serial_sequence('sponsorship_ledgertransaction', 'id')")
        _SEQUENCES[alias] = cur.fetchone()[0]
    return _SEQUENCES[alias]


@dataclass(frozen=True)
class Transfers:
    """What `post_transfers` wrote: the foreign-key values of its rows, as written (RETURNING),
    so that a caller skipping the per-row FK triggers can declare them (config/bulk_fk.py)."""

    count: int
    donation_ids: list[int]  # sponsorship_ledgertransaction.donation_id
    transaction_ids: list[int]  # sponsorship_ledgerentry.transaction_id

    def references(self) -> list:
        """Every foreign key of the two ledger tables, for `set_based_fk_checks`."""
        from config.bulk_fk import Reference

        return [
            Reference(
                column="sponsorship_ledgertransaction.donation_id",
                parent="sponsorship_donation",
                ids_sql="SELECT unnest(%s::bigint[])",
                params=[self.donation_ids],
            ),
            Reference(
                column="sponsorship_ledgerentry.transaction_id",
                parent="sponsorship_ledgertransaction",
                ids_sql="SELECT unnest(%s::bigint[])",
                params=[self.transaction_ids],
            ),
        ]


def post_transfers(*, kind: str, debit_account: str, credit_account: str, rows: list[tuple]) -> Transfers:
    """Bulk form of `ledger_post` for many two-leg movements of one kind (statement lines):
    rows are (key, donation id, memo, fund, amount > 0); each becomes its own transaction
    `Dr debit_account amount / Cr credit_account amount` (the fund on the side that is a fund
    account), all in one SQL statement inside the caller's DB transaction. Each balances by
    construction and the deferred balance trigger still checks them at commit. Keys must be
    new: a used key raises IntegrityError and the caller's transaction rolls back (callers
    claim their rows first, so a retry never reaches here twice). Returns the count and the
    foreign-key values written (`Transfers.references()`)."""
    from django.db import connection

    for account in (debit_account, credit_account):
        if account not in Account.values:
            raise ApplicationError(f"Unknown ledger account {account!r}.", code="ledger_account")
    fund_side = {a: a in FUND_ACCOUNTS for a in (debit_account, credit_account)}
    if not rows:
        return Transfers(0, [], [])
    for key, _donation, _memo, fund, amount in rows:
        if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
            raise ApplicationError(f"Ledger amounts are positive integer VND ({key}).", code="ledger_not_integer")
        if any(fund_side.values()) and not fund:
            raise ApplicationError(f"Transfer {key} needs a fund.", code="ledger_fund")
    cols = list(zip(*rows, strict=True))
    with connection.cursor() as cur:
        cur.execute(
            _TRANSFERS_SQL,
            {
                "keys": list(cols[0]),
                "donations": list(cols[1]),
                "memos": [m[:300] for m in cols[2]],
                "funds": list(cols[3]),
                "amounts": list(cols[4]),
                "kind": kind,
                "sequence": _transaction_id_sequence(cur),
                "debit": debit_account,
                "credit": credit_account,
                "debit_fund": fund_side[debit_account],
                "credit_fund": fund_side[credit_account],
            },
        )
        donation_ids, transaction_ids = cur.fetchone()
    return Transfers(len(rows), [d for d in donation_ids or [] if d is not None], transaction_ids or [])


def _assert_same(tx: LedgerTransaction, cleaned: list[Entry]) -> None:
    have = sorted((e.account, e.fund, e.amount) for e in tx.entries.all())
    want = sorted((e.account, e.fund, e.amount) for e in cleaned)
    if have != want:
        raise ApplicationError(f"Ledger key {tx.key} was already used for different entries.", code="ledger_key_reused")


def balance(account: str, fund: str | None = None) -> int:
    """Signed balance (debit positive). Pass fund=None for the whole account."""
    qs = LedgerEntry.objects.filter(account=account)
    if fund is not None:
        qs = qs.filter(fund=fund)
    return qs.aggregate(s=Sum("amount"))["s"] or 0


def natural_balance(account: str, fund: str | None = None) -> int:
    """Balance in the account's natural direction (credit-normal accounts shown positive)."""
    b = balance(account, fund)
    return -b if account in CREDIT_NORMAL else b


def trial_balance() -> dict[str, int]:
    rows = LedgerEntry.objects.values("account").annotate(s=Sum("amount"))
    out = {a: 0 for a in Account.values}
    for row in rows:
        out[row["account"]] = row["s"]
    return out


def fund_balances(account: str = Account.DONOR_FUNDS) -> dict[str, int]:
    rows = LedgerEntry.objects.filter(account=account).values("fund").annotate(s=Sum("amount")).order_by("fund")
    sign = -1 if account in CREDIT_NORMAL else 1
    return {row["fund"]: sign * row["s"] for row in rows}


def check_invariants() -> list[tuple[str, str]]:
    """Return broken invariants as (check name, message); empty when the books are right.

    1. every transaction balances; 2. donor funds = received − allocated − refunded − disputed
    − match pledges settled (a business paying its matches: money that went on to match_pledges)
    − match pledges settled (recomputed from transaction kinds); 3. no fund or credit-normal account is negative,
    no clearing account below zero.

    The checks are several queries: outside a transaction they run in one REPEATABLE READ
    snapshot, so payments posted between two of them cannot raise a false alarm (found by
    tests/reliability while load ran beside the ledger machine)."""
    from django.db import connection

    if connection.in_atomic_block:
        return _check_invariants()
    with transaction.atomic():
        with connection.cursor() as cur:
            cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        return _check_invariants()


def _check_invariants() -> list[tuple[str, str]]:
    from django.db import connection

    problems: list[tuple[str, str]] = []
    with connection.cursor() as cur:
        cur.execute(
            "SELECT t.key, SUM(e.amount) FROM sponsorship_ledgertransaction t "
            "JOIN sponsorship_ledgerentry e ON e.transaction_id = t.id GROUP BY t.id, t.key "
            "HAVING SUM(e.amount) <> 0 LIMIT 20"
        )
        for key, total in cur.fetchall():
            problems.append(("transaction_balances", f"transaction {key} is off by {total} VND"))
    by_kind = dict(
        LedgerEntry.objects.filter(account=Account.DONOR_FUNDS)
        .values_list("transaction__kind")
        .annotate(s=Sum("amount"))
        .values_list("transaction__kind", "s")
    )
    # "match_pledged": a business's match of a gift (matching/offers.py) is money received;
    # "match_reduced" gives part of it back when the matched gift was refunded or disputed,
    # "match_restored" takes it up again when that gift got its money back (a dispute won).
    received = -(
        by_kind.get("card_paid", 0)
        + by_kind.get("bank_paid", 0)
        + by_kind.get("match_pledged", 0)
        + by_kind.get("match_reduced", 0)
        + by_kind.get("match_restored", 0)
    )
    # "match_settled": a business's payment of its match pledges (matching/settlement.py) came
    # in as a gift (card_paid / bank_paid) and moved on to match_pledges: it is not donor money.
    settled = by_kind.get("match_settled", 0)
    # A card the agency rejects, or one un-matched after a refund (matching/unmatch.py), gives
    # its allocation back ("reject", "unmatch"): allocated is net of that.
    allocated = by_kind.get("allocation", 0) + by_kind.get("reject", 0) + by_kind.get("unmatch", 0)
    refunded = by_kind.get("refund", 0)
    disputed = by_kind.get("dispute", 0) + by_kind.get("dispute_reinstated", 0)
    funds = natural_balance(Account.DONOR_FUNDS)
    known = {"card_paid", "bank_paid", "allocation", "reject", "refund", "dispute", "dispute_reinstated"}
    known |= {"match_pledged", "unmatch", "redirect"}  # matching features; "redirect" nets to zero
    known |= {"match_reduced", "match_restored", "match_settled"}
    other = sum(v for k, v in by_kind.items() if k not in known)
    if other or funds != received - allocated - refunded - disputed - settled:
        problems.append(
            (
                "funds_equation",
                f"donor funds {funds} ≠ received {received} − allocated {allocated} − refunded {refunded}"
                f" − disputed {disputed} − settled pledges {settled} (unexplained {other})",
            )
        )
    for account in (Account.DONOR_FUNDS, Account.ALLOCATED_TO_CARDS):
        for fund, amount in fund_balances(account).items():
            if amount < 0:
                problems.append(("nothing_negative", f"{account}[{fund}] is negative: {amount} VND"))
    for account in (Account.REFUNDS, Account.REMITTED_TO_AGENCY, Account.FEES):
        if natural_balance(account) < 0:
            problems.append(("nothing_negative", f"{account} is negative: {natural_balance(account)} VND"))
    return problems


def run_invariant_check() -> list[LedgerAlarm]:
    """Check the books; for each broken invariant write a LedgerAlarm (shown to finance) and
    log an error. Safe to re-run: an open alarm with the same message is not duplicated."""
    alarms = []
    for name, message in check_invariants():
        alarm, created = LedgerAlarm.objects.get_or_create(check_name=name, message=message, resolved_at=None)
        if created:
            logger.error("ledger invariant broken: %s: %s", name, message)
        alarms.append(alarm)
    return alarms
