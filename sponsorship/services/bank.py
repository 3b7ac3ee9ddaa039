"""Bank transfers with VietQR: the pledge's QR code, statement import and matching.

Matching principles (FACTS §7): banks prepend/append text and strip punctuation or spaces
from the memo, so the reference is searched for inside the normalised description; the
amount decides partial/over-payment, which is recorded explicitly on the line and the gift.
Each statement line has a unique fingerprint, so an overlapping statement uploaded again
never counts a line twice."""

import base64
import datetime as dt
import hashlib
import io
import re
import time
import unicodedata
from contextlib import contextmanager
from typing import NamedTuple

import segno
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from vietnam_qr_pay import QRPay

from config.exceptions import ApplicationError, ConflictError

from ..models import Account, BankStatement, BankStatementLine, Donation, LineStatus, Method
from . import ledger
from .donations import REFERENCE_ALPHABET, recompute_money

REFERENCE_RE = re.compile(rf"CT[{REFERENCE_ALPHABET}]{{8}}")


# --- The pledge's QR --------------------------------------------------------------------------


def vietqr_payload(donation: Donation) -> str:
    """EMVCo VietQR for the configured receiving account, with amount and the reference as
    the transfer memo (field 62/08)."""
    qr = QRPay.init_viet_qr(
        bank_bin=settings.VIETQR_BANK_BIN,
        bank_number=settings.VIETQR_ACCOUNT_NUMBER,
        amount=str(donation.amount_vnd),
        purpose=donation.reference,
    )
    return qr.build()


def vietqr_svg_data_uri(payload: str) -> str:
    buf = io.BytesIO()
    segno.make(payload, error="m", micro=False).save(buf, kind="svg", scale=5, border=2)
    return "data:image/svg+xml;base64," + base64.b64encode(buf.getvalue()).decode()


# --- Statement import --------------------------------------------------------------------------

COLUMNS = {
    "date": ("date", "booking date", "booked_on", "ngay", "ngày"),
    "amount": ("amount", "credit", "so tien", "số tiền"),
    "description": ("description", "memo", "noi dung", "nội dung"),
    "bank_reference": ("bank reference", "bank_reference", "reference", "so but toan", "số bút toán"),
    "counter_account": ("counter-account", "counter_account", "counter account", "tai khoan doi ung"),
}


def _norm_header(h) -> str:
    return str(h or "").strip().lower()


def _parse_amount(value) -> int:
    if isinstance(value, int | float):
        return int(round(value))
    text = str(value or "").strip().replace(" ", "")
    text = re.sub(r"(VND|đ|₫)$", "", text, flags=re.IGNORECASE)
    negative = text.startswith("-")
    digits = re.sub(r"[^\d]", "", text)
    if not digits:
        raise ValueError(f"not an amount: {value!r}")
    return -int(digits) if negative else int(digits)


def _parse_date(value) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    text = str(value or "").strip()
    for fmt in ("%d/%m/%Y", "%Y-%m-%d", "%d-%m-%Y", "%d/%m/%Y %H:%M:%S", "%Y-%m-%d %H:%M:%S"):
        try:
            return dt.datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    raise ValueError(f"not a date: {value!r}")


def read_statement(name: str, content: bytes) -> list[dict]:
    """Parse CSV or XLSX rows into dicts with our five columns."""
    from config.uploads import read_table  # clear errors for empty, non-UTF-8, broken files (issue 8)

    rows = read_table(content, name)
    if not rows:
        return []
    header = [_norm_header(h) for h in rows[0]]
    index = {}
    for field, aliases in COLUMNS.items():
        for i, h in enumerate(header):
            if h in aliases:
                index[field] = i
                break
    missing = {"date", "amount", "description"} - index.keys()
    if missing:
        raise ApplicationError(
            _("The statement lacks the columns: %(cols)s.") % {"cols": ", ".join(sorted(missing))}, code="columns"
        )
    out = []
    for n, row in enumerate(rows[1:], start=2):
        if not row or all(c in (None, "") for c in row):
            continue

        def cell(field, row=row):
            i = index.get(field)
            return row[i] if i is not None and i < len(row) and row[i] is not None else ""

        try:
            out.append(
                {
                    "booked_on": _parse_date(cell("date")),
                    "amount_vnd": _parse_amount(cell("amount")),
                    "description": str(cell("description")).strip(),
                    "bank_reference": str(cell("bank_reference")).strip(),
                    "counter_account": str(cell("counter_account")).strip(),
                }
            )
        except ValueError as exc:
            raise ApplicationError(_("Line %(n)s: %(e)s") % {"n": n, "e": exc}, code="line") from exc
    if not out:  # a header alone would store an empty statement (issue 8)
        raise ApplicationError(_("The statement has no lines."), code="empty")
    return out


def fingerprint(line: dict, occurrence: int) -> str:
    """Identity of a line across uploads. With a bank reference: reference + date + amount
    (descriptions differ between exports); without: every field. `occurrence` tells apart
    identical lines inside one file (the 2nd identical line is a different transfer)."""
    if line["bank_reference"]:
        parts = ["ref", line["bank_reference"], line["booked_on"].isoformat(), str(line["amount_vnd"])]
    else:
        desc = re.sub(r"\s+", " ", line["description"]).strip().upper()
        parts = ["line", line["booked_on"].isoformat(), str(line["amount_vnd"]), desc, line["counter_account"]]
    parts.append(str(occurrence))
    return hashlib.sha256("|".join(parts).encode()).hexdigest()


def statement_import(*, name: str, content: bytes, by) -> BankStatement:
    """Store a statement's credit lines; lines already known (same fingerprint) are skipped
    (ON CONFLICT DO NOTHING). Debit lines are ignored. Matching runs afterwards in Celery."""
    from donors.models import Role

    if not (by.role in (Role.FINANCE, Role.ADMIN) or by.is_superuser):
        raise ApplicationError(_("Only finance staff can upload statements."), code="forbidden")
    parsed = read_statement(name, content)
    seen: dict[tuple, int] = {}
    objs = []
    with transaction.atomic():
        statement = BankStatement.objects.create(file_name=name[:200], uploaded_by=by, lines_total=len(parsed))
        for line in parsed:
            if line["amount_vnd"] <= 0:
                continue
            ident = tuple(line.values())
            seen[ident] = seen.get(ident, 0) + 1
            objs.append(BankStatementLine(statement=statement, fingerprint=fingerprint(line, seen[ident]), **line))
        created = BankStatementLine.objects.bulk_create(objs, batch_size=2000, ignore_conflicts=True)
        del created  # ignore_conflicts gives no ids: count what this statement really added
        new = BankStatementLine.objects.filter(statement=statement).count()
        statement.lines_new = new
        statement.save(update_fields=["lines_new"])
        from .. import tasks

        tasks.match_bank_lines.delay_on_commit(statement.pk)
    return statement


# --- Matching -------------------------------------------------------------------------------------


def _ascii_upper(text: str) -> str:
    if text.isascii():
        return text.upper()
    text = unicodedata.normalize("NFKD", text.replace("đ", "d").replace("Đ", "D"))
    return "".join(c for c in text if not unicodedata.combining(c)).upper()


_NOT_ALNUM_SPACE = re.compile(r"[^A-Z0-9 ]")
_NOT_ALNUM = re.compile(r"[^A-Z0-9]")
# Overlapping candidates: CT + 8 characters of the reference alphabet.
_CANDIDATE = re.compile(rf"(?=(CT[{REFERENCE_ALPHABET}]{{8}}))")


def candidate_references(description: str) -> list[str]:
    """References that may hide in a memo: banks insert spaces, dashes or glue words on.
    Candidates found with the punctuation turned into spaces come first (a reference the
    bank left whole is preferred), then those found with it all removed."""
    text = _ascii_upper(description)
    glued = _NOT_ALNUM.sub("", text)
    if "CT" not in glued:
        return []
    found_glued = _CANDIDATE.findall(glued)
    # Every candidate of the spaced variant is also one of the glued variant (removing the
    # spaces keeps an alphanumeric run whole), so with a single distinct candidate the order
    # question does not arise: most memos end here, with one regex pass instead of two.
    if len(set(found_glued)) <= 1:
        return found_glued[:1]
    found = []
    for ref in [*_CANDIDATE.findall(_NOT_ALNUM_SPACE.sub(" ", text)), *found_glued]:
        if ref not in found:
            found.append(ref)
    return found


def _apply_line(line: BankStatementLine, donation: Donation, *, by=None, note: str = "") -> None:
    """Post one line's money to a (locked) pledge and mark the line matched."""
    ledger.ledger_post(
        key=f"bank_paid:line:{line.pk}",
        kind="bank_paid",
        donation=donation,
        memo=f"bank transfer {donation.reference}",
        entries=[
            ledger.debit(Account.BANK_CLEARING, line.amount_vnd),
            ledger.credit(Account.DONOR_FUNDS, line.amount_vnd, donation.fund_key),
        ],
    )
    first = donation.paid_at is None
    if first:
        donation.paid_at = timezone.now()
    recompute_money(donation, f"bank line {line.pk}")
    received, pledged = donation.amount_received_vnd, donation.amount_vnd
    if received < pledged:
        explicit = _("partial payment: %(r)s of %(p)s VND received") % {"r": received, "p": pledged}
    elif received > pledged:
        explicit = _("over-payment: %(x)s VND more than pledged") % {"x": received - pledged}
    else:
        explicit = _("paid in full")
    line.status = LineStatus.MATCHED
    line.donation = donation
    line.matched_by = by
    line.matched_at = timezone.now()
    line.match_note = (note + " · " if note else "") + explicit
    line.save(update_fields=["status", "donation", "matched_by", "matched_at", "match_note"])
    if first:
        from .. import tasks

        tasks.send_receipt.delay_on_commit(donation.pk)


def _plan_for_batches(cur) -> None:
    """A batch touches a few thousand rows of tables that hold millions: index lookups, not
    hash joins over whole tables. The planner's default random_page_cost (4, spinning disks)
    makes it prefer scanning the whole table; our data sits on SSD or in cache. Local to
    the batch's transaction."""
    cur.execute("SET LOCAL random_page_cost = 1.1")


class _Phases:
    """Seconds per phase of the matching, summed over batches (the benchmark prints them so
    the time can be located; costs a clock read per phase)."""

    def __init__(self, into: dict | None):
        import threading

        self.into = into
        self.lock = threading.Lock()  # workers add from their threads

    @contextmanager
    def __call__(self, name: str):
        if self.into is None:
            yield
            return
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - t0)

    def add(self, name: str, seconds: float) -> None:
        if self.into is not None:
            with self.lock:
                self.into[name] = self.into.get(name, 0.0) + seconds


class _Line(NamedTuple):
    id: int
    description: str
    amount_vnd: int


_CLAIM_SQL = """
SELECT id, description, amount_vnd FROM sponsorship_bankstatementline
WHERE status = 'unmatched' AND id > %(after)s {statement}
ORDER BY id LIMIT %(batch)s FOR UPDATE SKIP LOCKED
"""


# Matching workers per run. A batch alternates between Python (parsing the memos, planning
# the notes) and PostgreSQL (the writes, the commit); with two workers on disjoint claims one
# batch's Python runs while the other's SQL does, and both cores are used.
MATCH_WORKERS = 2


def match_lines(
    *, statement_id: int | None = None, batch: int = 20000, timings: dict | None = None, workers: int = MATCH_WORKERS
) -> dict:
    """Match unmatched lines by reference-in-description, in bounded batches, in bulk: per
    batch one claim (SELECT … FOR UPDATE SKIP LOCKED, so two runs never take one line), one
    pledge lookup, bulk ledger postings (one balanced transaction per line, keyed by the
    line), one guarded update of the touched pledges, one line update, one receipt task.
    Lines without a recognisable reference stay in the unmatched queue. Returns counts;
    `timings`, if given, receives seconds per phase summed over batches and workers.

    `workers` batches run at once, each in its own thread, connection and transaction; they
    take consecutive id ranges (a shared high-water mark), so each line is looked at once per
    run. Called inside a transaction, the run stays in the caller's connection: another
    connection could not see the caller's uncommitted rows."""
    from django.db import connection

    claim = _Claims(statement_id, batch)
    phase = _Phases(timings)
    if workers <= 1 or connection.in_atomic_block:
        return _match_claimed(claim, phase)
    import threading

    from django.utils import translation

    results: list = [None] * workers
    language = translation.get_language()  # thread-local: the notes are written in the caller's

    def work(i: int) -> None:
        from django.db import connections

        try:
            with translation.override(language):
                results[i] = _match_claimed(claim, phase)
        except BaseException as exc:  # noqa: BLE001 — re-raised in the caller's thread below
            results[i] = exc
            claim.stop()
        finally:
            connections.close_all()  # this thread's connections only

    threads = [threading.Thread(target=work, args=(i,), name=f"bank-match-{i}") for i in range(1, workers)]
    for t in threads:
        t.start()
    try:
        results[0] = _match_claimed(claim, phase)
    except BaseException:
        claim.stop()
        raise
    finally:
        for t in threads:
            t.join()
    for r in results:
        if isinstance(r, BaseException):
            raise r
    return {key: sum(r[key] for r in results) for key in ("matched", "unmatched")}


class _Claims:
    """Hands out consecutive batches of unmatched lines to the workers of one run: each claim
    starts after the highest id any worker claimed (one claim at a time), so two workers
    never look at one line and a line left unmatched is not looked at twice in a run."""

    def __init__(self, statement_id: int | None, batch: int):
        import threading

        self.sql = _CLAIM_SQL.format(statement="AND statement_id = %(statement)s" if statement_id else "")
        self.params = {"after": 0, "statement": statement_id, "batch": batch}
        self.lock = threading.Lock()
        self.stopped = False

    def stop(self) -> None:
        self.stopped = True  # a worker failed: the others finish their batch and stop

    def next(self, cur) -> list[_Line]:
        with self.lock:
            if self.stopped:
                return []
            cur.execute(self.sql, self.params)
            lines = [_Line(*row) for row in cur.fetchall()]
            if lines:
                self.params["after"] = lines[-1].id
            return lines


def _match_claimed(claim: _Claims, phase: _Phases) -> dict:
    """One worker: claim a batch, match it, commit; until no unmatched line is left."""
    from django.db import connection

    counts = {"matched": 0, "unmatched": 0}
    while True:
        marks: dict[str, float] = {}
        with phase("batch"), transaction.atomic():
            if phase.into is not None:
                # Runs first of the batch's on-commit callbacks: splits the commit itself from
                # the work queued after it (receipts, matching requests).
                transaction.on_commit(lambda marks=marks: marks.setdefault("committed", time.perf_counter()))
            with phase("claim"), connection.cursor() as cur:
                _plan_for_batches(cur)
                lines = claim.next(cur)
            if not lines:
                return counts
            matched, unmatched = _match_batch(lines, phase)
            counts["matched"] += matched
            counts["unmatched"] += unmatched
            marks["written"] = time.perf_counter()
        if "committed" in marks:
            phase.add("commit", marks["committed"] - marks["written"])
            phase.add("after commit", time.perf_counter() - marks["committed"])


# Each write below returns, aggregated, the foreign-key values it wrote (RETURNING): the batch
# skips PostgreSQL's per-row FK triggers and declares exactly these for the set-based check
# (config/bulk_fk.py; `_Written`).
_FK_RETURNING = """
SELECT array_agg(DISTINCT donation_id), array_agg(DISTINCT statement_id), array_agg(DISTINCT matched_by_id)
FROM written
"""

# The status rules mirror donations.apply_totals (keep them in step); the money columns are
# recomputed from the ledger, not incremented.
_LINES_SQL = (
    """
WITH written AS (
UPDATE sponsorship_bankstatementline l SET
    status = 'matched', donation_id = p.donation_id, matched_at = now(),
    match_note = left(%(by_ref)s || ' · ' || CASE
        WHEN d.amount_received_vnd < d.amount_vnd THEN format(%(partial)s, d.amount_received_vnd, d.amount_vnd)
        WHEN d.amount_received_vnd > d.amount_vnd THEN format(%(over)s, d.amount_received_vnd - d.amount_vnd)
        ELSE %(full)s END, 200)
FROM unnest(%(lines)s::bigint[], %(donations)s::bigint[]) AS p(line_id, donation_id)
JOIN sponsorship_donation d ON d.id = p.donation_id
WHERE l.id = p.line_id
RETURNING l.donation_id, l.statement_id, l.matched_by_id
)"""
    + _FK_RETURNING
)


def _pg_format(template: str, names: list[str]) -> str:
    """'%(r)s of %(p)s' → '%1$s of %2$s' for PostgreSQL format()."""
    for i, name in enumerate(names, start=1):
        template = template.replace(f"%({name})s", f"%{i}$s")
    return template


# Gifts in these states with nothing refunded take the direct path: their new totals follow
# from the locked row plus this batch's lines (the same rules as donations.apply_totals
# with no refund or dispute). Anything else is recomputed from the ledger (RECOMPUTE_SQL).
_DIRECT_STATUSES = ("pending", "partially_paid", "succeeded")

_LOCK_SQL = """
SELECT id, reference, fund_key, amount_vnd, amount_received_vnd, amount_refunded_vnd, status, paid_at
FROM sponsorship_donation WHERE reference = ANY(%s::text[]) AND method = 'bank' ORDER BY id FOR UPDATE
"""

# Writes only unindexed columns (received, paid_at, status): with room on the page (the
# table's fillfactor, migration 0011) PostgreSQL updates the row in place and touches none of
# the table's indexes. tests/sponsorship/test_bank_bulk.py keeps these columns unindexed.
GIFT_UPDATE_COLUMNS = ("amount_received_vnd", "paid_at", "status")

_GIFTS_SQL = """
WITH v AS (
    SELECT * FROM unnest(%(ids)s::bigint[], %(received)s::bigint[], %(old)s::text[], %(new)s::text[])
        AS v(id, received, old_status, new_status)
), upd AS (
    UPDATE sponsorship_donation d SET
        amount_received_vnd = v.received, paid_at = COALESCE(d.paid_at, now()), status = v.new_status
    FROM v WHERE d.id = v.id AND d.status = v.old_status
    RETURNING d.id, d.donor_id, d.locality_id
), hist AS (
    INSERT INTO sponsorship_donationhistory (donation_id, from_status, to_status, note, at)
    SELECT v.id, v.old_status, v.new_status, %(note)s, now()
    FROM v JOIN upd ON upd.id = v.id WHERE v.old_status <> v.new_status
    RETURNING donation_id
)
SELECT (SELECT array_agg(DISTINCT donor_id) FROM upd), (SELECT array_agg(DISTINCT locality_id) FROM upd),
       (SELECT array_agg(DISTINCT donation_id) FROM hist)
"""

_NOTED_LINES_SQL = (
    """
WITH written AS (
UPDATE sponsorship_bankstatementline l SET
    status = 'matched', donation_id = p.donation_id, matched_at = now(), match_note = p.note
FROM unnest(%(lines)s::bigint[], %(donations)s::bigint[], %(notes)s::text[]) AS p(line_id, donation_id, note)
WHERE l.id = p.line_id AND l.status = 'unmatched'
RETURNING l.donation_id, l.statement_id, l.matched_by_id
)"""
    + _FK_RETURNING
)


class _Written:
    """Foreign-key values the batch wrote, per referencing column (None and duplicates are
    dropped), turned into `Reference`s grouped by parent table: one check per parent."""

    # Every FK of every table the batch writes (tests/sponsorship/test_bank_bulk.py compares
    # this with the models). The ledger's two are `ledger.Transfers.references()`, folded in
    # here so that the gifts are checked once for the ledger, history and line columns.
    COLUMNS = {
        "sponsorship_ledgertransaction.donation_id": "sponsorship_donation",
        "sponsorship_ledgerentry.transaction_id": "sponsorship_ledgertransaction",
        "sponsorship_donation.donor_id": "donors_user",
        "sponsorship_donation.locality_id": "beneficiaries_locality",
        "sponsorship_donationhistory.donation_id": "sponsorship_donation",
        "sponsorship_bankstatementline.donation_id": "sponsorship_donation",
        "sponsorship_bankstatementline.statement_id": "sponsorship_bankstatement",
        "sponsorship_bankstatementline.matched_by_id": "donors_user",
    }

    def __init__(self):
        self.values: dict[str, set[int]] = {column: set() for column in self.COLUMNS}

    def add(self, column: str, ids) -> None:
        self.values[column].update(i for i in ids or () if i is not None)

    def references(self) -> list:
        from config.bulk_fk import Reference

        by_parent: dict[str, list[str]] = {}
        for column, parent in self.COLUMNS.items():
            by_parent.setdefault(parent, []).append(column)
        refs = []
        for parent, columns in by_parent.items():
            ids = sorted(set().union(*(self.values[c] for c in columns)))
            if not ids:
                continue  # nothing written there (e.g. matched_by: the job matches as nobody)
            refs.append(
                Reference(
                    column=" / ".join(columns),
                    parent=parent,
                    ids_sql="SELECT unnest(%s::bigint[])",
                    params=[ids],
                )
            )
        return refs


def _match_batch(lines: list[_Line], phase: _Phases) -> tuple[int, int]:
    """One batch, set-based: lock the pledges named in the descriptions, post one balanced
    ledger transaction per line (keyed by the line, all in this DB transaction), move the
    gifts' totals and statuses in one guarded UPDATE … FROM, note each line (partial, over,
    full, in line order for a gift paid by several lines), queue one receipt task. The writes
    skip PostgreSQL's per-row FK triggers; what they wrote is checked set-based before the
    batch commits (config/bulk_fk.py)."""
    from django.db import connection

    from config.bulk_fk import set_based_fk_checks

    from .donations import RECOMPUTE_SQL

    with phase("references"):
        cands = {line.id: candidate_references(line.description) for line in lines}
        refs = sorted({r for rs in cands.values() for r in rs})
    if not refs:
        return 0, len(lines)
    with phase("lock gifts"), connection.cursor() as cur:
        cur.execute(_LOCK_SQL, [refs])
        gifts = {row[1]: row for row in cur.fetchall()}
    with phase("plan"):
        pairs = []
        for line in lines:
            gift = next((gifts[r] for r in cands[line.id] if r in gifts), None)
            if gift is not None:
                pairs.append((line, gift))
        if not pairs:
            return 0, len(lines)

        by_ref = str(_("matched by reference"))
        partial, over, full = (
            _("partial payment: %(r)s of %(p)s VND received"),
            _("over-payment: %(x)s VND more than pledged"),
            str(_("paid in full")),
        )
        running: dict[int, int] = {}
        direct: dict[int, tuple] = {}
        notes: list[str] = []
        recompute: set[int] = set()
        for line, (gid, _ref, _fund, pledged, received, refunded, status, _paid_at) in pairs:
            if status not in _DIRECT_STATUSES or refunded:
                recompute.add(gid)
                notes.append("")
                continue
            total = running.get(gid, received) + line.amount_vnd
            running[gid] = total
            if total < pledged:
                explicit = partial % {"r": total, "p": pledged}
            elif total > pledged:
                explicit = over % {"x": total - pledged}
            else:
                explicit = full
            notes.append(f"{by_ref} · {explicit}"[:200])
            direct[gid] = (total, status, "partially_paid" if total < pledged else "succeeded")

    written = _Written()
    references: list = []  # filled at the end of the block, checked when it closes
    with connection.cursor() as cur, set_based_fk_checks(cur, references):
        with phase("ledger"):
            transfers = ledger.post_transfers(
                kind="bank_paid",
                debit_account=Account.BANK_CLEARING,
                credit_account=Account.DONOR_FUNDS,
                rows=[
                    (f"bank_paid:line:{line.id}", g[0], f"bank transfer {g[1]}", g[2], line.amount_vnd)
                    for line, g in pairs
                ],
            )
        newly_paid = [g[0] for g in gifts.values() if g[7] is None and g[0] in direct]
        if direct:
            ids = list(direct)
            with phase("gift update"):
                cur.execute(
                    _GIFTS_SQL,
                    {
                        "ids": ids,
                        "received": [direct[i][0] for i in ids],
                        "old": [direct[i][1] for i in ids],
                        "new": [direct[i][2] for i in ids],
                        "note": "bank statement",
                    },
                )
                donors, localities, history = cur.fetchone()
                written.add("sponsorship_donation.donor_id", donors)
                written.add("sponsorship_donation.locality_id", localities)
                written.add("sponsorship_donationhistory.donation_id", history)
            noted = [(line.id, g[0], note) for (line, g), note in zip(pairs, notes, strict=True) if note]
            with phase("line update"):
                cur.execute(
                    _NOTED_LINES_SQL,
                    {
                        "lines": [x[0] for x in noted],
                        "donations": [x[1] for x in noted],
                        "notes": [x[2] for x in noted],
                    },
                )
                _add_line_fks(written, cur.fetchone())
        if recompute:
            # Refunded or otherwise unusual gifts: totals from the ledger, notes from the result.
            cur.execute(RECOMPUTE_SQL, {"ids": sorted(recompute), "note": "bank statement"})
            newly_paid += [row[0] for row in cur.fetchall()]
            # RECOMPUTE_SQL (shared with the other payment paths) returns no FK values: its
            # gift update and history rows reference these gifts and their donors/places.
            cur.execute(
                "SELECT array_agg(DISTINCT donor_id), array_agg(DISTINCT locality_id) "
                "FROM sponsorship_donation WHERE id = ANY(%s::bigint[])",
                [sorted(recompute)],
            )
            donors, localities = cur.fetchone()
            written.add("sponsorship_donation.donor_id", donors)
            written.add("sponsorship_donation.locality_id", localities)
            written.add("sponsorship_donationhistory.donation_id", recompute)
            rest = [(line.id, g[0]) for line, g in pairs if g[0] in recompute]
            cur.execute(
                _LINES_SQL,
                {
                    "lines": [x[0] for x in rest],
                    "donations": [x[1] for x in rest],
                    "by_ref": by_ref,
                    "partial": _pg_format(partial, ["r", "p"]),
                    "over": _pg_format(over, ["x"]),
                    "full": full,
                },
            )
            _add_line_fks(written, cur.fetchone())
        written.add("sponsorship_ledgertransaction.donation_id", transfers.donation_ids)
        written.add("sponsorship_ledgerentry.transaction_id", transfers.transaction_ids)
        references += written.references()
        writes_done = time.perf_counter()
    phase.add("fk check", time.perf_counter() - writes_done)
    from ..matching import hooks as matching_hooks  # match offers and a matching run, after commit

    with phase("hooks"):
        matching_hooks.gifts_paid(sorted({g[0] for _line, g in pairs}))
        if newly_paid:
            from .. import tasks

            tasks.send_receipts_later(newly_paid)
    return len(pairs), len(lines) - len(pairs)


def _add_line_fks(written: _Written, row) -> None:
    donations, statements, matched_by = row
    written.add("sponsorship_bankstatementline.donation_id", donations)
    written.add("sponsorship_bankstatementline.statement_id", statements)
    written.add("sponsorship_bankstatementline.matched_by_id", matched_by)


def match_line_manually(*, line: BankStatementLine, reference: str, by) -> BankStatementLine:
    """Finance staff match a queued line to a pledge by its reference."""
    from donors.models import Role

    if not (by.role in (Role.FINANCE, Role.ADMIN) or by.is_superuser):
        raise ApplicationError(_("Only finance staff can match bank lines."), code="forbidden")
    with transaction.atomic():
        line = BankStatementLine.objects.select_for_update().get(pk=line.pk)
        if line.status != LineStatus.UNMATCHED:
            raise ConflictError(_("This line is already handled."), code="line_done")
        donation = (
            Donation.objects.select_for_update().filter(reference=reference.strip().upper(), method=Method.BANK).first()
        )
        if donation is None:
            raise ApplicationError(_("No bank-transfer pledge has the reference %(r)s.") % {"r": reference})
        _apply_line(line, donation, by=by, note=_("matched by hand"))
    return line
