"""config/bulk_fk.py: bulk writes without per-row FK triggers are still checked — set-based,
before commit — and skip nothing but those triggers."""

import pytest
from django.db import IntegrityError, connection, transaction

from beneficiaries.models import Household, Locality
from config.bulk_fk import Reference, can_skip_row_triggers, set_based_fk_checks

pytestmark = pytest.mark.django_db(transaction=True)

INSERT_HH = (
    "INSERT INTO beneficiaries_household (locality_id, external_ref, address, phone, poverty_class, "
    "certificate_number, is_poor_commune, is_ethnic_minority, is_island_commune, created_at, updated_at) "
    "SELECT loc, 'BULKFK-' || loc || '-' || g, '', '', 'none', '', false, false, false, now(), now() "
    "FROM unnest(%s::bigint[]) loc, generate_series(1, 3) g"
)
NEW_HH = Reference(
    column="beneficiaries_household.locality_id",
    parent="beneficiaries_locality",
    ids_sql="SELECT locality_id FROM beneficiaries_household WHERE external_ref LIKE 'BULKFK-%%'",
)


def _commune_ids(n=2):
    return list(Locality.objects.filter(level="commune").order_by("id").values_list("id", flat=True)[:n])


def test_the_test_role_may_skip_row_triggers():
    # Otherwise every other test here would pass through the slow path and prove nothing.
    with connection.cursor() as cur:
        assert can_skip_row_triggers(cur)


def test_valid_rows_are_written_and_the_triggers_were_skipped():
    ids = _commune_ids()
    with transaction.atomic(), connection.cursor() as cur:
        with set_based_fk_checks(cur, [NEW_HH]) as skipped:
            cur.execute("SHOW session_replication_role")
            assert cur.fetchone()[0] == "replica"
            cur.execute(INSERT_HH, [ids])
        assert skipped
        cur.execute("SHOW session_replication_role")
        assert cur.fetchone()[0] == "origin"
    assert Household.objects.filter(external_ref__startswith="BULKFK-").count() == 6


def test_an_orphan_is_refused_and_nothing_is_written():
    ids = _commune_ids() + [987_654_321]
    with pytest.raises(IntegrityError, match=r"beneficiaries_household.locality_id: 1 value.*987654321"):
        with transaction.atomic(), connection.cursor() as cur:
            with set_based_fk_checks(cur, [NEW_HH]):
                cur.execute(INSERT_HH, [ids])
    assert not Household.objects.filter(external_ref__startswith="BULKFK-").exists()


def test_referenced_rows_are_locked_like_the_triggers_lock_them():
    """A parent referenced by the bulk write cannot be deleted until the writer commits."""
    import psycopg
    from django.db import connections

    (loc,) = _commune_ids(1)
    params = connections["default"].get_connection_params()
    with transaction.atomic(), connection.cursor() as cur:
        with set_based_fk_checks(cur, [NEW_HH]):
            cur.execute(INSERT_HH, [[loc]])
        with psycopg.connect(**{k: v for k, v in params.items() if k != "cursor_factory"}) as other:
            other.execute("SET lock_timeout = '200ms'")
            with pytest.raises(psycopg.errors.LockNotAvailable):
                other.execute("DELETE FROM beneficiaries_locality WHERE id = %s", [loc])
        transaction.set_rollback(True)


def test_our_own_triggers_fire_in_replica_mode():
    """An unbalanced ledger transaction is still refused inside the block (ENABLE ALWAYS)."""
    with pytest.raises(IntegrityError, match="does not balance"):
        with transaction.atomic(), connection.cursor() as cur:
            with set_based_fk_checks(cur, []):
                cur.execute(
                    "WITH t AS (INSERT INTO sponsorship_ledgertransaction (key, kind, memo, created_at) "
                    "VALUES ('bulkfk:unbalanced', 'test', '', now()) RETURNING id) "
                    "INSERT INTO sponsorship_ledgerentry (transaction_id, account, fund, amount) "
                    "SELECT id, 'stripe_clearing', '', 100 FROM t"
                )


def test_every_trigger_of_ours_fires_always():
    with connection.cursor() as cur:
        cur.execute(
            "SELECT c.relname || '.' || tg.tgname FROM pg_trigger tg JOIN pg_class c ON c.oid = tg.tgrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE NOT tg.tgisinternal AND n.nspname = current_schema() AND tg.tgenabled <> 'A'"
        )
        assert cur.fetchall() == [], "add ENABLE ALWAYS for new triggers (see sponsorship 0010)"
        cur.execute("SELECT COUNT(*) FROM pg_trigger WHERE NOT tgisinternal")
        assert cur.fetchone()[0] >= 3  # the ledger and allocation triggers exist at all


def test_parents_this_transaction_wrote_are_checked_but_not_locked():
    """`lock=False` (the matcher's allocations → the cards it just inserted): no lock taken on
    the parent, and a missing one is still refused."""
    import psycopg
    from django.db import connections

    (loc,) = _commune_ids(1)
    unlocked = Reference(NEW_HH.column, NEW_HH.parent, NEW_HH.ids_sql, lock=False)
    params = connections["default"].get_connection_params()
    with transaction.atomic(), connection.cursor() as cur:
        with set_based_fk_checks(cur, [unlocked]):
            cur.execute(INSERT_HH, [[loc]])
        with psycopg.connect(**{k: v for k, v in params.items() if k != "cursor_factory"}) as other:
            other.execute("SET lock_timeout = '200ms'")
            other.execute("SELECT id FROM beneficiaries_locality WHERE id = %s FOR UPDATE", [loc])
            other.rollback()
        transaction.set_rollback(True)
    with pytest.raises(IntegrityError, match=r"beneficiaries_household.locality_id: 1 value.*987654321"):
        with transaction.atomic(), connection.cursor() as cur:
            with set_based_fk_checks(cur, [unlocked]):
                cur.execute(INSERT_HH, [[loc, 987_654_321]])
