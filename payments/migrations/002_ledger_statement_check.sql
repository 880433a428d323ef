-- The balance check runs once per statement that inserts entries (with the statement's new
-- rows as a transition table) instead of once per entry row at commit: fewer trigger calls,
-- and a stricter rule. Every journal transaction touched by the statement must sum to zero
-- per currency when the statement ends (so a journal's entries are written in one statement,
-- as ledger.py does); UPDATE, DELETE and TRUNCATE stay forbidden, so it stays balanced.

DROP TRIGGER ledger_entries_balanced ON ledger_entries;
DROP FUNCTION ledger_check_balanced();

CREATE FUNCTION ledger_check_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    bad record;
BEGIN
    SELECT e.transaction_id, e.currency, sum(e.amount_fen) AS total INTO bad
      FROM ledger_entries e
     WHERE e.transaction_id IN (SELECT DISTINCT transaction_id FROM new_entries)
     GROUP BY e.transaction_id, e.currency HAVING sum(e.amount_fen) <> 0 LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'ledger transaction % does not balance in %: %',
            bad.transaction_id, bad.currency, bad.total
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER ledger_entries_balanced
    AFTER INSERT ON ledger_entries
    REFERENCING NEW TABLE AS new_entries
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_check_balanced();
