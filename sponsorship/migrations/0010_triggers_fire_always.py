"""Our own triggers (ledger balance, allocation guard) fire whatever session_replication_role
says, so that bulk writers that skip PostgreSQL's per-row foreign-key triggers
(config/bulk_fk.py) skip only those. tests/foundation/test_bulk_fk.py keeps every new trigger
in line."""

from django.db import migrations

ALWAYS = """
DO $$
DECLARE t record;
BEGIN
    FOR t IN SELECT c.relname, tg.tgname FROM pg_trigger tg JOIN pg_class c ON c.oid = tg.tgrelid
             JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE NOT tg.tgisinternal AND n.nspname = current_schema() LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ALWAYS TRIGGER %I', t.relname, t.tgname);
    END LOOP;
END $$;
"""

ORIGIN = ALWAYS.replace("ENABLE ALWAYS TRIGGER", "ENABLE TRIGGER")


class Migration(migrations.Migration):
    dependencies = [("sponsorship", "0009_merge_holds_and_gap_weight")]
    operations = [migrations.RunSQL(ALWAYS, ORIGIN)]
