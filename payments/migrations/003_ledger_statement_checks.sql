-- One statement-level check per inserting statement instead of two foreign-key checks per
-- entry row plus the balance query. Each foreign-key check was an SPI query that also locked
-- the referenced row (FOR KEY SHARE: a WAL record each time, and a MultiXact when concurrent
-- payments share an account such as pending_clearing); a payment inserts six entries.
--
-- What the database still guarantees, for every statement that inserts entries:
-- * every entry's journal transaction and account exist (same SQLSTATE as a foreign key,
--   23503); neither can go away afterwards: both tables are append-only (triggers forbid
--   UPDATE, DELETE and TRUNCATE; ledger_accounts gets them here);
-- * the statement's new entries sum to zero per journal transaction and currency. Entries
--   are never updated or deleted and every earlier statement left its journals balanced, so
--   this keeps every journal transaction balanced, as the sum over all its entries did.

DROP TRIGGER ledger_entries_balanced ON ledger_entries;
DROP FUNCTION ledger_check_balanced();
ALTER TABLE ledger_entries
    DROP CONSTRAINT ledger_entries_transaction_id_fkey,
    DROP CONSTRAINT ledger_entries_account_code_fkey;

CREATE FUNCTION ledger_check_entries() RETURNS trigger LANGUAGE plpgsql
    -- Plans cached while the tables were small must not stay sequential scans as they grow.
    SET enable_seqscan = off AS $$
DECLARE
    bad record;
BEGIN
    SELECT n.transaction_id, n.account_code, t.id IS NULL AS no_transaction INTO bad
      FROM new_entries n
      LEFT JOIN ledger_transactions t ON t.id = n.transaction_id
      LEFT JOIN ledger_accounts a ON a.code = n.account_code
     WHERE t.id IS NULL OR a.code IS NULL
     LIMIT 1;
    IF FOUND THEN
        IF bad.no_transaction THEN
            RAISE EXCEPTION 'ledger entry of an unknown journal transaction %', bad.transaction_id
                USING ERRCODE = 'foreign_key_violation';
        END IF;
        RAISE EXCEPTION 'ledger entry of an unknown account %', bad.account_code
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    SELECT transaction_id, currency, sum(amount_fen) AS total INTO bad
      FROM new_entries
     GROUP BY transaction_id, currency HAVING sum(amount_fen) <> 0
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'ledger transaction % does not balance in %: %',
            bad.transaction_id, bad.currency, bad.total
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER ledger_entries_checked
    AFTER INSERT ON ledger_entries
    REFERENCING NEW TABLE AS new_entries
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_check_entries();

CREATE TRIGGER ledger_accounts_append_only BEFORE UPDATE OR DELETE ON ledger_accounts
    FOR EACH ROW EXECUTE FUNCTION ledger_append_only();
CREATE TRIGGER ledger_accounts_no_truncate BEFORE TRUNCATE ON ledger_accounts
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only();
