-- Payments: merchants, orders, idempotency keys, channel notifications, refunds,
-- a double-entry append-only ledger, the merchant-event outbox and reconciliation.

CREATE TABLE pay_merchants (
    client_id text PRIMARY KEY,              -- the OAuth client that acts as merchant
    unit_id text NOT NULL,
    name text NOT NULL,
    settlement_account_name text,
    settlement_bank text,
    settlement_account_no bytea,             -- encrypted (vault, context "settlement")
    webhook_url text,
    webhook_secret bytea NOT NULL,           -- encrypted (vault, context "webhook")
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE pay_orders (
    id text PRIMARY KEY,                      -- ord_..., also the channel out_trade_no
    merchant_id text NOT NULL REFERENCES pay_merchants (client_id),
    out_trade_no text NOT NULL,
    amount_fen bigint NOT NULL CHECK (amount_fen BETWEEN 1 AND 1000000000),
    currency text NOT NULL DEFAULT 'CNY' CHECK (currency = 'CNY'),
    subject text NOT NULL,
    notify_url text,
    payer_sub text,
    status text NOT NULL CHECK (status IN
        ('created', 'paying', 'paid', 'partially_refunded', 'refunded', 'closed')),
    channel text CHECK (channel IN ('wechatpay', 'alipay')),
    channel_reference text,
    transaction_id text,
    refunded_fen bigint NOT NULL DEFAULT 0,
    refunding_fen bigint NOT NULL DEFAULT 0,
    expires_at timestamptz NOT NULL,
    next_check_at timestamptz,                -- closed-loop poller lease / schedule
    paid_at timestamptz,
    closed_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (merchant_id, out_trade_no),
    CHECK (refunded_fen + refunding_fen <= amount_fen)
);
CREATE INDEX pay_orders_payer ON pay_orders (payer_sub, created_at DESC) WHERE payer_sub IS NOT NULL;
CREATE INDEX pay_orders_merchant ON pay_orders (merchant_id, created_at DESC);
CREATE INDEX pay_orders_check ON pay_orders (next_check_at)
    WHERE status IN ('created', 'paying');
CREATE INDEX pay_orders_paid_at ON pay_orders (paid_at) WHERE paid_at IS NOT NULL;

CREATE TABLE pay_idempotency_keys (
    merchant_id text NOT NULL,
    key text NOT NULL,
    request_hash bytea NOT NULL,
    status int NOT NULL,
    response jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, key)
);
CREATE INDEX pay_idempotency_created ON pay_idempotency_keys (created_at);

-- Every verified channel notification (and every query result acted on), deduplicated.
CREATE TABLE pay_notifications (
    channel text NOT NULL,
    notification_id text NOT NULL,
    kind text NOT NULL,
    order_id text,
    outcome text NOT NULL,                    -- credited, duplicate, flagged, stray, refund, ignored
    detail jsonb NOT NULL DEFAULT '{}',
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (channel, notification_id)
);

-- Things a human must look at: amount or merchant mismatches, stray payments.
CREATE TABLE pay_anomalies (
    id text PRIMARY KEY,
    kind text NOT NULL,
    channel text,
    order_id text,
    transaction_id text,
    expected_fen bigint,
    actual_fen bigint,
    action text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (kind, channel, transaction_id)
);

CREATE TABLE pay_refunds (
    id text PRIMARY KEY,                      -- rfd_..., also the channel out_refund_no
    order_id text NOT NULL REFERENCES pay_orders (id),
    merchant_id text NOT NULL,
    out_refund_no text NOT NULL,
    amount_fen bigint NOT NULL CHECK (amount_fen > 0),
    reason text NOT NULL DEFAULT '',
    kind text NOT NULL DEFAULT 'merchant' CHECK (kind IN ('merchant', 'stray')),
    channel text NOT NULL,
    transaction_id text,
    status text NOT NULL CHECK (status IN ('processing', 'succeeded', 'failed')),
    channel_refund_id text,
    next_check_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    succeeded_at timestamptz,
    failed_reason text,
    UNIQUE (merchant_id, out_refund_no)
);
CREATE INDEX pay_refunds_order ON pay_refunds (order_id, created_at);
CREATE INDEX pay_refunds_check ON pay_refunds (next_check_at) WHERE status = 'processing';

-- Ledger --------------------------------------------------------------------------------------

CREATE TABLE ledger_accounts (
    code text PRIMARY KEY,                    -- e.g. channel_clearing:wechatpay
    kind text NOT NULL CHECK (kind IN ('asset', 'liability', 'income', 'expense')),
    currency text NOT NULL DEFAULT 'CNY',
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE ledger_transactions (
    id text PRIMARY KEY,                      -- ltx_...
    idempotency_key text NOT NULL UNIQUE,     -- a posting is never made twice
    kind text NOT NULL,                       -- hold, void, payment, stray, refund_*, fee
    order_id text,
    channel text,
    external_id text,                         -- channel transaction id or refund id
    amount_fen bigint NOT NULL,
    occurred_at timestamptz NOT NULL DEFAULT now(),
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ledger_transactions_order ON ledger_transactions (order_id);
CREATE INDEX ledger_transactions_occurred ON ledger_transactions (channel, occurred_at);

CREATE TABLE ledger_entries (
    id bigserial PRIMARY KEY,
    transaction_id text NOT NULL REFERENCES ledger_transactions (id),
    account_code text NOT NULL REFERENCES ledger_accounts (code),
    amount_fen bigint NOT NULL CHECK (amount_fen <> 0),   -- debit > 0, credit < 0
    currency text NOT NULL DEFAULT 'CNY',
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ledger_entries_account ON ledger_entries (account_code, id);
CREATE INDEX ledger_entries_tx ON ledger_entries (transaction_id);

-- Every journal transaction sums to zero per currency, checked at commit.
CREATE FUNCTION ledger_check_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    bad record;
BEGIN
    SELECT currency, sum(amount_fen) AS total INTO bad
      FROM ledger_entries WHERE transaction_id = NEW.transaction_id
     GROUP BY currency HAVING sum(amount_fen) <> 0 LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'ledger transaction % does not balance in %: %',
            NEW.transaction_id, bad.currency, bad.total
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END $$;

CREATE CONSTRAINT TRIGGER ledger_entries_balanced
    AFTER INSERT ON ledger_entries
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION ledger_check_balanced();

CREATE FUNCTION ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the ledger is append-only: % on % is not allowed', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END $$;

CREATE TRIGGER ledger_entries_append_only BEFORE UPDATE OR DELETE ON ledger_entries
    FOR EACH ROW EXECUTE FUNCTION ledger_append_only();
CREATE TRIGGER ledger_entries_no_truncate BEFORE TRUNCATE ON ledger_entries
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only();
CREATE TRIGGER ledger_transactions_append_only BEFORE UPDATE OR DELETE ON ledger_transactions
    FOR EACH ROW EXECUTE FUNCTION ledger_append_only();
CREATE TRIGGER ledger_transactions_no_truncate BEFORE TRUNCATE ON ledger_transactions
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only();

-- Merchant notifications (transactional outbox) -----------------------------------------------

CREATE TABLE pay_events (
    id text PRIMARY KEY,                      -- evt_..., stable across redeliveries
    merchant_id text NOT NULL,
    type text NOT NULL,
    order_id text,
    url text NOT NULL,
    payload jsonb NOT NULL,
    status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'dead')),
    attempts int NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_status int,
    last_error text,
    created_at timestamptz NOT NULL DEFAULT now(),
    delivered_at timestamptz
);
CREATE INDEX pay_events_due ON pay_events (next_attempt_at) WHERE status = 'pending';
CREATE INDEX pay_events_merchant ON pay_events (merchant_id, created_at DESC);

-- Reconciliation --------------------------------------------------------------------------------

CREATE TABLE pay_reconciliations (
    id text PRIMARY KEY,                      -- rec_...
    bill_date date NOT NULL,
    channel text NOT NULL,
    matched int NOT NULL,
    differences int NOT NULL,
    unexplained int NOT NULL,
    bill_total_fen bigint NOT NULL,
    ledger_total_fen bigint NOT NULL,
    created_by text,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX pay_reconciliations_date ON pay_reconciliations (bill_date, channel, created_at DESC);

CREATE TABLE pay_reconciliation_differences (
    id bigserial PRIMARY KEY,
    reconciliation_id text NOT NULL REFERENCES pay_reconciliations (id),
    kind text NOT NULL CHECK (kind IN ('ledger_only', 'bill_only', 'amount_mismatch')),
    item text NOT NULL,                       -- payment or refund
    order_id text,
    reference text NOT NULL,                  -- transaction id or out_refund_no
    ledger_fen bigint,
    bill_fen bigint,
    explained boolean NOT NULL,
    action text NOT NULL
);
