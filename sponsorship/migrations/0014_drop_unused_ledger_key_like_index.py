"""Drop the varchar_pattern_ops index Django adds beside the unique index on
LedgerTransaction.key. Keys are looked up exactly (the unique index serves them); nothing but
a benchmark's clean-up searches them by prefix, while every posting — a statement batch writes
20,000 transactions — paid for maintaining this one too."""

from django.db import migrations

DROP = """
DO $$
DECLARE name text;
BEGIN
    FOR name IN SELECT indexname FROM pg_indexes
        WHERE tablename = 'sponsorship_ledgertransaction' AND indexname LIKE 'sponsorship_ledgertransaction_key_%_like'
    LOOP
        EXECUTE format('DROP INDEX %I', name);
    END LOOP;
END $$;
"""
CREATE = (
    "CREATE INDEX IF NOT EXISTS sponsorship_ledgertransaction_key_6a8a8e94_like "
    "ON sponsorship_ledgertransaction (key varchar_pattern_ops)"
)


class Migration(migrations.Migration):
    dependencies = [("sponsorship", "0013_merge_match3_fewer_rows_and_main")]

    operations = [migrations.RunSQL(DROP, CREATE)]
