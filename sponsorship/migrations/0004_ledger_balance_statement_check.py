"""The balance check of 0002, made cheap for bulk postings without weakening it.

0002 fired a deferred trigger per ledger entry, so a bank batch of 5,000 lines ran 10,000
single-transaction sums at commit. Now a statement-level trigger (with transition tables)
queues the ids of the transactions a statement touched as one row, and a deferred
constraint trigger on that queue checks them all in one grouped query at commit, then
removes the row. The guarantee is unchanged: every touched transaction must balance when
the database transaction commits (or at SET CONSTRAINTS … IMMEDIATE), whatever wrote it.
The queue rows never outlive their transaction, so no other session ever sees them."""

from django.db import migrations

FORWARD = """
DROP TRIGGER IF EXISTS sponsorship_ledger_balanced ON sponsorship_ledgerentry;
DROP FUNCTION IF EXISTS sponsorship_ledger_check_balance();

CREATE TABLE sponsorship_ledgerbalancecheck (
    id bigserial PRIMARY KEY,
    transaction_ids bigint[] NOT NULL
);

CREATE OR REPLACE FUNCTION sponsorship_ledger_queue_check() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO sponsorship_ledgerbalancecheck (transaction_ids)
        SELECT array_agg(DISTINCT transaction_id) FROM new_rows HAVING count(*) > 0;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO sponsorship_ledgerbalancecheck (transaction_ids)
        SELECT array_agg(DISTINCT transaction_id) FROM old_rows HAVING count(*) > 0;
    ELSE
        INSERT INTO sponsorship_ledgerbalancecheck (transaction_ids)
        SELECT array_agg(DISTINCT transaction_id)
        FROM (SELECT transaction_id FROM new_rows UNION ALL SELECT transaction_id FROM old_rows) AS touched
        HAVING count(*) > 0;
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER sponsorship_ledger_queue_insert
    AFTER INSERT ON sponsorship_ledgerentry REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION sponsorship_ledger_queue_check();
CREATE TRIGGER sponsorship_ledger_queue_update
    AFTER UPDATE ON sponsorship_ledgerentry REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION sponsorship_ledger_queue_check();
CREATE TRIGGER sponsorship_ledger_queue_delete
    AFTER DELETE ON sponsorship_ledgerentry REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION sponsorship_ledger_queue_check();

CREATE OR REPLACE FUNCTION sponsorship_ledger_check_queued() RETURNS trigger AS $$
DECLARE
    bad record;
BEGIN
    SELECT e.transaction_id AS tx_id, SUM(e.amount) AS total INTO bad
    FROM sponsorship_ledgerentry e
    WHERE e.transaction_id = ANY(NEW.transaction_ids)
    GROUP BY e.transaction_id
    HAVING SUM(e.amount) <> 0
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'ledger transaction % does not balance (sum %)', bad.tx_id, bad.total
            USING ERRCODE = 'check_violation';
    END IF;
    DELETE FROM sponsorship_ledgerbalancecheck WHERE id = NEW.id;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE CONSTRAINT TRIGGER sponsorship_ledger_balanced
    AFTER INSERT ON sponsorship_ledgerbalancecheck
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION sponsorship_ledger_check_queued();
"""

BACKWARD = """
DROP TRIGGER IF EXISTS sponsorship_ledger_queue_insert ON sponsorship_ledgerentry;
DROP TRIGGER IF EXISTS sponsorship_ledger_queue_update ON sponsorship_ledgerentry;
DROP TRIGGER IF EXISTS sponsorship_ledger_queue_delete ON sponsorship_ledgerentry;
DROP TABLE IF EXISTS sponsorship_ledgerbalancecheck;
DROP FUNCTION IF EXISTS sponsorship_ledger_check_queued();
DROP FUNCTION IF EXISTS sponsorship_ledger_queue_check();

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


class Migration(migrations.Migration):
    dependencies = [("sponsorship", "0003_cards")]
    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
