"""The statement matcher's bulk path: its writes skip PostgreSQL's per-row FK triggers, so it
declares every foreign key it writes and an orphan is still refused; the gift update stays
a HOT update (no indexed column written); a matched line leaves the open-lines index."""

import pytest
from django.db import IntegrityError, connection, transaction

from config.bulk_fk import constrained_foreign_keys
from sponsorship.models import (
    BankStatement,
    BankStatementLine,
    Donation,
    DonationHistory,
    DonationStatus,
    LedgerEntry,
    LedgerTransaction,
    LineStatus,
    Method,
)
from sponsorship.services import bank, ledger
from sponsorship.services.donations import donation_create
from tests.bank_statements import csv_statement as statement

pytestmark = pytest.mark.django_db


def pledge(donor, amount=1_000_000):
    return donation_create(donor=donor, method=Method.BANK, amount_vnd=amount)[0]


# The tables one batch writes (the ledger through post_transfers, the rest in bank.py).
WRITTEN_MODELS = (LedgerTransaction, LedgerEntry, Donation, DonationHistory, BankStatementLine)


def test_the_batch_declares_every_foreign_key_of_every_table_it_writes():
    assert dict(bank._Written.COLUMNS) == constrained_foreign_keys(*WRITTEN_MODELS)


def test_a_matched_batch_skips_the_row_triggers_and_is_checked(donor_an, finance_giang, monkeypatch):
    import config.bulk_fk as bulk_fk

    gifts = [pledge(donor_an) for _ in range(3)]
    rows = [("01/11/2026", "1000000", f"ung ho {g.reference}", f"FT{i}", "") for i, g in enumerate(gifts)]
    st = bank.statement_import(name="s.csv", content=statement(rows), by=finance_giang)
    seen = []
    original = bulk_fk.verify_references

    def spy(cursor, references):
        with connection.cursor() as cur:
            cur.execute("SHOW session_replication_role")
            seen.append((cur.fetchone()[0], {r.parent: r.params[0] for r in references}))
        return original(cursor, references)

    monkeypatch.setattr(bulk_fk, "verify_references", spy)
    assert bank.match_lines(statement_id=st.pk) == {"matched": 3, "unmatched": 0}
    ((role, checked),) = seen  # one batch, one set-based check
    assert role == "origin"  # back to normal before the check runs
    gift_ids = sorted(g.pk for g in gifts)
    assert checked["sponsorship_donation"] == gift_ids
    assert checked["donors_user"] == [donor_an.pk]
    assert checked["sponsorship_bankstatement"] == [st.pk]
    assert checked["sponsorship_ledgertransaction"] == sorted(
        LedgerTransaction.objects.filter(donation__in=gifts).values_list("pk", flat=True)
    )
    assert "beneficiaries_locality" not in checked  # these pledges name no place
    assert all(g.status == DonationStatus.SUCCEEDED for g in Donation.objects.filter(pk__in=gift_ids))
    assert not ledger.check_invariants()


def test_an_orphan_line_is_refused_and_the_batch_rolls_back(donor_an, finance_giang):
    """The statement row vanished under the lines (written with the triggers off, as a
    buggy bulk writer could): the set-based check refuses the batch, nothing is posted."""
    gift = pledge(donor_an)
    st = bank.statement_import(
        name="s.csv", content=statement([("01/11/2026", "1000000", gift.reference, "FT1", "")]), by=finance_giang
    )
    with connection.cursor() as cur:
        cur.execute("SET LOCAL session_replication_role = replica")
        cur.execute("DELETE FROM sponsorship_bankstatement WHERE id = %s", [st.pk])
        cur.execute("SET LOCAL session_replication_role = origin")
    with pytest.raises(IntegrityError, match=rf"sponsorship_bankstatementline.statement_id: 1 value.*{st.pk}"):
        with transaction.atomic():
            bank.match_lines(statement_id=st.pk)
    assert not LedgerTransaction.objects.filter(donation=gift).exists()
    assert BankStatementLine.objects.get().status == LineStatus.UNMATCHED
    gift.refresh_from_db()
    assert gift.status == DonationStatus.PENDING and gift.amount_received_vnd == 0
    BankStatementLine.objects.all().delete()  # the orphan this test made must not outlive it


def test_post_transfers_declares_both_ledger_keys_and_refuses_an_orphan_gift(donor_an):
    from config.bulk_fk import set_based_fk_checks

    gift = pledge(donor_an)
    missing = Donation.objects.order_by("-pk").values_list("pk", flat=True).first() + 1000
    rows = [
        (f"test:ok:{gift.pk}", gift.pk, "ok", gift.fund_key, 1000),
        (f"test:orphan:{missing}", missing, "orphan", gift.fund_key, 1000),
    ]
    assert {r.column: r.parent for r in ledger.Transfers(0, [], []).references()} == {
        "sponsorship_ledgertransaction.donation_id": "sponsorship_donation",
        "sponsorship_ledgerentry.transaction_id": "sponsorship_ledgertransaction",
    }
    refs: list = []
    with pytest.raises(IntegrityError, match=rf"sponsorship_ledgertransaction.donation_id: 1 value.*{missing}"):
        with transaction.atomic(), connection.cursor() as cur, set_based_fk_checks(cur, refs):
            refs += ledger.post_transfers(
                kind="bank_paid", debit_account="bank_clearing", credit_account="donor_funds", rows=rows
            ).references()
    assert not LedgerTransaction.objects.filter(key__startswith="test:").exists()


def _index_columns(table: str) -> str:
    with connection.cursor() as cur:
        cur.execute(
            "SELECT string_agg(pg_get_indexdef(indexrelid), ' ') FROM pg_index WHERE indrelid = %s::regclass", [table]
        )
        return cur.fetchone()[0]


def test_the_gift_update_writes_no_indexed_column_so_it_can_be_hot():
    defs = _index_columns("sponsorship_donation")
    for column in bank.GIFT_UPDATE_COLUMNS:
        assert f"({column}" not in defs and f" {column}" not in defs and f"{column})" not in defs, defs
    set_clause = bank._GIFTS_SQL.split(" SET", 1)[1].split("FROM v", 1)[0]
    assigned = {part.split("=")[0].strip() for part in set_clause.split(",") if "=" in part}
    assert assigned == set(bank.GIFT_UPDATE_COLUMNS)
    with connection.cursor() as cur:
        cur.execute("SELECT reloptions FROM pg_class WHERE oid = 'sponsorship_donation'::regclass")
        assert "fillfactor=50" in (cur.fetchone()[0] or [])


def test_matching_updates_the_gifts_in_place_and_matched_lines_leave_the_open_index(donor_an, finance_giang):
    gifts = [pledge(donor_an, 500_000) for _ in range(4)]
    rows = [("01/11/2026", "500000", g.reference, f"FT{i}", "") for i, g in enumerate(gifts)]
    rows.append(("01/11/2026", "12345", "no reference here", "FT9", ""))
    st = bank.statement_import(name="s.csv", content=statement(rows), by=finance_giang)
    with connection.cursor() as cur:
        cur.execute(
            "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_xact_user_tables WHERE relname = 'sponsorship_donation'"
        )
        before = cur.fetchone()
        bank.match_lines(statement_id=st.pk)
        cur.execute(
            "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_xact_user_tables WHERE relname = 'sponsorship_donation'"
        )
        after = cur.fetchone()
        updated, hot = after[0] - before[0], after[1] - before[1]
        assert updated == 4 and hot == 4
        # The open-lines index (status <> 'matched') is what the claim and the queue read.
        cur.execute("SET LOCAL enable_seqscan = off")
        cur.execute("EXPLAIN SELECT id FROM sponsorship_bankstatementline WHERE status = 'unmatched' ORDER BY id")
        plan = " ".join(r[0] for r in cur.fetchall())
        assert "bankline_open_status_id" in plan
    assert BankStatementLine.objects.filter(statement=st, status=LineStatus.UNMATCHED).count() == 1
    assert BankStatement.objects.filter(pk=st.pk).exists()


@pytest.mark.django_db(transaction=True)
def test_two_workers_take_disjoint_batches_and_count_each_line_once(donor_an, finance_giang):
    """The service's default run: worker threads on their own connections (committed data)."""
    gifts = [pledge(donor_an, 300_000) for _ in range(9)]
    rows = [("01/11/2026", "300000", f"CK {g.reference} ung ho", f"FT{i}", "") for i, g in enumerate(gifts)]
    rows += [("01/11/2026", "100000", g.reference, f"FTX{i}", "") for i, g in enumerate(gifts[:3])]  # over-payments
    rows += [("02/11/2026", "5000", f"no reference {i}", f"FTN{i}", "") for i in range(4)]
    st = bank.statement_import(name="s.csv", content=statement(rows), by=finance_giang)
    timings: dict = {}
    counts = bank.match_lines(statement_id=st.pk, batch=2, workers=2, timings=timings)
    assert counts == {"matched": 12, "unmatched": 4}
    assert timings["ledger"] > 0 and timings["commit"] >= 0  # both phases were timed
    assert LedgerTransaction.objects.filter(kind="bank_paid").count() == 12
    assert BankStatementLine.objects.filter(status=LineStatus.UNMATCHED).count() == 4
    over = Donation.objects.filter(pk__in=[g.pk for g in gifts[:3]])
    assert {g.amount_received_vnd for g in over} == {400_000}
    notes = BankStatementLine.objects.filter(donation__in=over).values_list("match_note", flat=True)
    assert sum("over-payment" in n for n in notes) == 3, sorted(notes)
    assert not ledger.check_invariants()
    assert bank.match_lines(statement_id=st.pk, workers=2) == {"matched": 0, "unmatched": 4}  # queue stays
