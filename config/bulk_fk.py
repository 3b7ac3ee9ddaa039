"""Bulk writes checked set-based instead of by PostgreSQL's per-row foreign-key triggers.

PostgreSQL checks a foreign key with one trigger call per written row. Measured on the embedded
PostgreSQL 16 here: inserting a million rows into a narrow table takes 1.6 s without a key and
5.8 s with one deferred key (the check runs at commit, ≈4.2 µs per row); an immediate key costs
the same. The registry import and the matcher write a million rows with three to five keys each,
so the checks cost more than the writes themselves.

Inside `set_based_fk_checks` the transaction runs with `session_replication_role = replica`,
which skips exactly those internal triggers: unique, check and not-null constraints still hold,
and our own triggers (ledger balance, allocation guard) are `ENABLE ALWAYS` (migration
sponsorship 0010), so they fire as before. On leaving the block every declared reference is
checked in one statement: the referenced rows are locked FOR KEY SHARE, as the triggers would
lock them (a concurrent delete of a parent waits for our commit and then fails), and a missing
one raises IntegrityError naming the column, which rolls the whole transaction back. The
constraints stay in the schema for every other writer.

The database role needs SET on `session_replication_role`: a superuser (the embedded and the
development servers) or, on PostgreSQL 15 and later, `GRANT SET ON PARAMETER
session_replication_role TO <role>`. Without it the block still works: the per-row triggers
run, slower, with the same result.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from django.db import IntegrityError


@dataclass(frozen=True)
class Reference:
    """A foreign key to verify: the ids that `ids_sql` selects must exist in `parent`.

    `ids_sql` is a SELECT of one column (NULLs are ignored, as by a foreign key), e.g.
    "SELECT household_id FROM beneficiaries_member WHERE import_job_id = %(job)s".
    """

    column: str  # what the error names, e.g. "beneficiaries_member.household_id"
    parent: str  # the referenced table; its key column is `id`
    ids_sql: str
    params: dict | Sequence | None = None
    # False only when every referenced row was inserted by this same transaction: nobody else
    # can see it, let alone delete it, so locking it (which rewrites each row's lock bits, ≈1 s
    # per 200,000 rows here) buys nothing. It is still checked to exist.
    lock: bool = True


def can_skip_row_triggers(cursor) -> bool:
    cursor.execute("SELECT has_parameter_privilege(current_user, 'session_replication_role', 'SET')")
    return bool(cursor.fetchone()[0])


def verify_references(cursor, references: Sequence[Reference]) -> None:
    """Check that every referenced row exists, locking it FOR KEY SHARE as the per-row triggers
    would (unless the reference says this transaction wrote it), and raise IntegrityError naming
    the column if one is missing."""
    for ref in references:
        lock = " FOR KEY SHARE OF p" if ref.lock else ""
        cursor.execute(
            f"WITH ref AS MATERIALIZED (SELECT DISTINCT v AS id FROM ({ref.ids_sql}) s (v) WHERE v IS NOT NULL), "
            f"found AS MATERIALIZED (SELECT p.id FROM {ref.parent} p WHERE p.id IN (SELECT id FROM ref){lock}) "
            "SELECT (SELECT COUNT(*) FROM ref) - (SELECT COUNT(*) FROM found)",
            ref.params,
        )
        (missing,) = cursor.fetchone()
        if missing:
            # Only on the way to the error: which id, for the message.
            cursor.execute(
                f"SELECT MIN(v) FROM ({ref.ids_sql}) s (v) WHERE v IS NOT NULL "
                f"AND NOT EXISTS (SELECT 1 FROM {ref.parent} p WHERE p.id = s.v)",
                ref.params,
            )
            (example,) = cursor.fetchone()
            raise IntegrityError(
                f"{ref.column}: {missing} value(s) not present in {ref.parent} (e.g. id {example}); nothing was written"
            )


def constrained_foreign_keys(*models) -> dict[str, str]:
    """`table.column` → referenced table of every foreign key the models' tables carry in the
    database: what a bulk writer of those tables must declare. Its tests compare their
    declarations with this, so a key added to a model later cannot be forgotten."""
    from django.db.models import ForeignKey

    return {
        f"{model._meta.db_table}.{field.column}": field.related_model._meta.db_table
        for model in models
        for field in model._meta.concrete_fields
        if isinstance(field, ForeignKey) and field.db_constraint
    }


@contextmanager
def set_based_fk_checks(cursor, references: Sequence[Reference]) -> Iterator[bool]:
    """Run the block's writes without per-row FK triggers, then verify `references` set-based.

    Must run inside a transaction (`transaction.atomic()`); yields whether the per-row triggers
    are skipped. On an exception the transaction's rollback also undoes the setting."""
    skip = can_skip_row_triggers(cursor)
    if skip:
        cursor.execute("SET LOCAL session_replication_role = replica")
    yield skip
    if skip:
        # Back to normal before anything else in the transaction writes.
        cursor.execute("SET LOCAL session_replication_role = origin")
    verify_references(cursor, references)
