"""Drop the varchar_pattern_ops index Django adds beside the unique index on
Member.personal_id. Nothing searches personal IDs by prefix (LIKE 'x%'): lookups are exact
and use the unique index, while every member insert (a million in a province's import)
paid for maintaining this one too."""

from django.db import migrations

DROP = """
DO $$
DECLARE name text;
BEGIN
    FOR name IN SELECT indexname FROM pg_indexes
        WHERE tablename = 'beneficiaries_member' AND indexname LIKE 'beneficiaries_member_personal_id_%_like'
    LOOP
        EXECUTE format('DROP INDEX %I', name);
    END LOOP;
END $$;
"""
CREATE = (
    "CREATE INDEX IF NOT EXISTS beneficiaries_member_personal_id_0e79ac15_like "
    "ON beneficiaries_member (personal_id varchar_pattern_ops)"
)


class Migration(migrations.Migration):
    dependencies = [("beneficiaries", "0004_member_vsi_support_months_used")]

    operations = [migrations.RunSQL(DROP, CREATE)]
