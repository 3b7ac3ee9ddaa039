"""Every ledger transaction balances, enforced by PostgreSQL at commit: a deferred
constraint trigger sums the entries of each touched transaction."""

from django.db import migrations

FORWARD = """
CREATE OR REPLACE FUNCTION sponsorship_ledger_check_balance() RETURNS trigger AS $$
DECLARE
    tx_id bigint;
    total bigint;
BEGIN
    tx_id := COALESCE(NEW.transaction_id, OLD.transaction_id);
    SELECT COALESCE(SUM(amount), 0) INTO total FROM sponsorship_ledgerentry WHERE transaction_id = tx_id;
    IF total <> 0 THEN
        RAISE EXCEPTION 'ledger transaction % does not balance (sum %)', tx_id, total
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE CONSTRAINT TRIGGER sponsorship_ledger_balanced
    AFTER INSERT OR UPDATE OR DELETE ON sponsorship_ledgerentry
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION sponsorship_ledger_check_balance();
"""

BACKWARD = """
DROP TRIGGER IF EXISTS sponsorship_ledger_balanced ON sponsorship_ledgerentry;
DROP FUNCTION IF EXISTS sponsorship_ledger_check_balance();
"""


class Migration(migrations.Migration):
    dependencies = [("sponsorship", "0001_initial")]
    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
