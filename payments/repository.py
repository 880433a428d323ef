"""All SQL of the payments context except the ledger's (``ledger.py``) and reconciliation."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import asyncpg

from identity.crypto import Vault
from identity.ids import new_id
from payments.domain import Event, Merchant, Order, Refund
from payments.ledger import Journal, Ledger

if TYPE_CHECKING:
    from payments.webhooks import DeliveryOutcome

_ORDER = "SELECT * FROM pay_orders WHERE id = $1"
_ORDER_LOCKED = "SELECT * FROM pay_orders WHERE id = $1 FOR UPDATE"
_INSERT_ORDER = """INSERT INTO pay_orders (id, merchant_id, out_trade_no, amount_fen, currency,
        subject, notify_url, payer_sub, status, expires_at, next_check_at, created_at, updated_at)
    SELECT $1::text, $2::text, $3::text, $4::bigint, $5::text, $6::text, $7::text, $8::text,
           $9::text, $10::timestamptz, $11::timestamptz, $12::timestamptz, $12::timestamptz
    {when}"""
# The key's advisory lock is tried, never waited for: held, a first request with this key
# is in flight (409); free, any earlier one has committed and ON CONFLICT sees its row.
# An autocommitted statement is its own transaction, so the lock lasts exactly as long.
IDEMPOTENCY_LOCK = "hashtextextended('pay-idem' || chr(31) || {merchant} || chr(31) || {key}, 0)"
_LOCK_KEY = IDEMPOTENCY_LOCK.format(merchant="$2::text", key="$13::text")
_INSERT_ORDER_WITH_KEY = f"""WITH lk AS (SELECT pg_try_advisory_xact_lock({_LOCK_KEY}) AS got),
    k AS (
        INSERT INTO pay_idempotency_keys (merchant_id, key, request_hash, status, response)
        SELECT $2::text, $13::text, $14::bytea, $15::int, $16::jsonb WHERE (SELECT got FROM lk)
        ON CONFLICT (merchant_id, key) DO NOTHING RETURNING 1),
    o AS (INSERT INTO pay_orders (id, merchant_id, out_trade_no, amount_fen, currency,
        subject, notify_url, payer_sub, status, expires_at, next_check_at, created_at, updated_at)
        SELECT $1::text, $2::text, $3::text, $4::bigint, $5::text, $6::text, $7::text, $8::text,
               $9::text, $10::timestamptz, $11::timestamptz, $12::timestamptz, $12::timestamptz
         WHERE EXISTS (SELECT 1 FROM k) RETURNING 1)
    SELECT (SELECT got FROM lk) AS got, EXISTS (SELECT 1 FROM o) AS fresh"""  # noqa: S608 - constants
_REFUND = "SELECT * FROM pay_refunds WHERE id = $1"
_REFUND_LOCKED = "SELECT * FROM pay_refunds WHERE id = $1 FOR UPDATE"


def _iso(column: str) -> str:
    """SQL text of ``domain.iso`` for a timestamptz: UTC, microseconds only if any, 'Z'."""
    utc = f"({column} AT TIME ZONE 'UTC')"
    return f"""CASE WHEN {column} IS NULL THEN NULL ELSE
        to_char({utc}, 'YYYY-MM-DD"T"HH24:MI:SS')
        || CASE WHEN extract(microseconds FROM {utc})::bigint % 1000000 = 0 THEN ''
                ELSE to_char({utc}, '.US') END || 'Z' END"""


# Order.public() of the updated row ``u``.
_ORDER_PUBLIC = f"""jsonb_build_object(
    'id', u.id, 'merchant_id', u.merchant_id, 'out_trade_no', u.out_trade_no,
    'status', u.status, 'amount_fen', u.amount_fen, 'currency', u.currency,
    'subject', u.subject, 'notify_url', u.notify_url, 'payer', u.payer_sub,
    'channel', u.channel, 'transaction_id', u.transaction_id,
    'refunded_fen', u.refunded_fen, 'refunding_fen', u.refunding_fen,
    'expires_at', {_iso("u.expires_at")}, 'paid_at', {_iso("u.paid_at")},
    'closed_at', {_iso("u.closed_at")}, 'created_at', {_iso("u.created_at")})"""
# The callback's common case, read and write in one statement. ``o`` reads the order; the
# UPDATE re-checks status and updated_at on the row it locks (READ COMMITTED re-evaluates them
# on a newer version), so an order changed meanwhile is left alone and nothing is written.
# Journals as ledger.py posts them: the hold's void (only if it was paying), the payment; each
# posted journal's two entries come from its kind (no join, which PostgreSQL made a hash join).
_CREDIT_OPEN_ORDER = f"""WITH o AS (
        SELECT id, status, updated_at FROM pay_orders
         WHERE id = $1 AND status IN ('created', 'paying') AND amount_fen = $5
           AND EXISTS (SELECT 1 FROM ledger_accounts
                        WHERE code = 'merchant_payable:' || pay_orders.merchant_id)
           AND NOT EXISTS (SELECT 1 FROM pay_notifications
                            WHERE channel = $2 AND notification_id = $6)),
    u AS (
        UPDATE pay_orders p SET status = 'paid', channel = $2, transaction_id = $3,
               paid_at = $4, next_check_at = NULL, updated_at = now()
          FROM o WHERE p.id = o.id AND p.status = o.status AND p.updated_at = o.updated_at
        RETURNING p.*, o.status AS was),
    j AS (
        SELECT $7::text AS id, 'void:' || u.id AS key, 'void' AS kind, NULL::text AS channel,
               NULL::text AS external_id, now() AS occurred_at
          FROM u WHERE u.was = 'paying'
        UNION ALL
        SELECT $8::text, 'payment:' || $2 || ':' || $3, 'payment', $2, $3, $4 FROM u),
    ledger_tx AS (
        INSERT INTO ledger_transactions (id, idempotency_key, kind, order_id, channel,
            external_id, amount_fen, occurred_at)
        SELECT j.id, j.key, j.kind, u.id, j.channel, j.external_id, u.amount_fen, j.occurred_at
          FROM j CROSS JOIN u
        ON CONFLICT (idempotency_key) DO NOTHING
        RETURNING id, kind),
    ledger_en AS (
        INSERT INTO ledger_entries (transaction_id, account_code, amount_fen)
        SELECT t.id, e.account, e.amount
          FROM ledger_tx t CROSS JOIN u CROSS JOIN LATERAL (VALUES
               (CASE t.kind WHEN 'void' THEN 'pending_payable:' || u.merchant_id
                            WHEN 'payment' THEN 'channel_clearing:' || $2 END, u.amount_fen),
               (CASE t.kind WHEN 'void' THEN 'pending_clearing'
                            WHEN 'payment' THEN 'merchant_payable:' || u.merchant_id END,
                -u.amount_fen))
               AS e(account, amount)),
    n AS (
        INSERT INTO pay_notifications (channel, notification_id, kind, order_id, outcome)
        SELECT $2, $6, 'payment', u.id, 'credited' FROM u),
    ev AS (
        INSERT INTO pay_events (id, merchant_id, type, order_id, url, payload)
        SELECT $9, u.merchant_id, 'payment.succeeded', u.id,
               COALESCE(u.notify_url, m.webhook_url),
               jsonb_build_object('id', $9::text, 'type', 'payment.succeeded',
                                  'created_at', $10::text,
                                  'data', jsonb_build_object('order', {_ORDER_PUBLIC}))
          FROM u LEFT JOIN pay_merchants m ON m.client_id = u.merchant_id
         WHERE COALESCE(u.notify_url, m.webhook_url) IS NOT NULL)
    SELECT EXISTS (SELECT 1 FROM u)"""  # noqa: S608 - fixed text


def _order(r: asyncpg.Record) -> Order:
    return Order(
        id=r["id"],
        merchant_id=r["merchant_id"],
        out_trade_no=r["out_trade_no"],
        amount_fen=r["amount_fen"],
        currency=r["currency"],
        subject=r["subject"],
        notify_url=r["notify_url"],
        payer_sub=r["payer_sub"],
        status=r["status"],
        channel=r["channel"],
        channel_reference=r["channel_reference"],
        transaction_id=r["transaction_id"],
        refunded_fen=r["refunded_fen"],
        refunding_fen=r["refunding_fen"],
        expires_at=r["expires_at"],
        paid_at=r["paid_at"],
        closed_at=r["closed_at"],
        created_at=r["created_at"],
        updated_at=r["updated_at"],
    )


def _order_args(o: Order) -> list[Any]:
    return [
        o.id,
        o.merchant_id,
        o.out_trade_no,
        o.amount_fen,
        o.currency,
        o.subject,
        o.notify_url,
        o.payer_sub,
        o.status,
        o.expires_at,
        o.expires_at,  # next_check_at: the loop closes it when it expires
        o.created_at,
    ]


def _refund(r: asyncpg.Record) -> Refund:
    return Refund(
        id=r["id"],
        order_id=r["order_id"],
        merchant_id=r["merchant_id"],
        out_refund_no=r["out_refund_no"],
        amount_fen=r["amount_fen"],
        reason=r["reason"],
        kind=r["kind"],
        channel=r["channel"],
        transaction_id=r["transaction_id"],
        status=r["status"],
        channel_refund_id=r["channel_refund_id"],
        created_at=r["created_at"],
        succeeded_at=r["succeeded_at"],
        failed_reason=r["failed_reason"],
    )


def _event(r: asyncpg.Record) -> Event:
    payload = r["payload"]
    return Event(
        id=r["id"],
        merchant_id=r["merchant_id"],
        type=r["type"],
        order_id=r["order_id"],
        url=r["url"],
        payload=json.loads(payload) if isinstance(payload, str) else payload,
        status=r["status"],
        attempts=r["attempts"],
        next_attempt_at=r["next_attempt_at"],
        last_status=r["last_status"],
        last_error=r["last_error"],
        created_at=r["created_at"],
        delivered_at=r["delivered_at"],
    )


class PaymentsRepository:
    def __init__(self, vault: Vault) -> None:
        self.vault = vault

    # merchants ---------------------------------------------------------------------------

    def _merchant(self, r: asyncpg.Record) -> Merchant:
        no = r["settlement_account_no"]
        return Merchant(
            client_id=r["client_id"],
            unit_id=r["unit_id"],
            name=r["name"],
            webhook_url=r["webhook_url"],
            webhook_secret=self.vault.decrypt(bytes(r["webhook_secret"]), context="webhook"),
            settlement_account_name=r["settlement_account_name"],
            settlement_bank=r["settlement_bank"],
            settlement_account_no=self.vault.decrypt(bytes(no), context="settlement")
            if no
            else None,
            created_at=r["created_at"],
        )

    async def get_merchant(self, conn: asyncpg.Connection, client_id: str) -> Merchant | None:
        row = await conn.fetchrow("SELECT * FROM pay_merchants WHERE client_id = $1", client_id)
        return self._merchant(row) if row else None

    async def ensure_merchant(
        self, conn: asyncpg.Connection, client_id: str, unit_id: str, name: str, secret: str
    ) -> Merchant:
        await conn.execute(
            """INSERT INTO pay_merchants (client_id, unit_id, name, webhook_secret)
               VALUES ($1, $2, $3, $4) ON CONFLICT (client_id) DO NOTHING""",
            client_id,
            unit_id,
            name,
            self.vault.encrypt(secret, context="webhook"),
        )
        merchant = await self.get_merchant(conn, client_id)
        assert merchant is not None
        return merchant

    async def update_merchant(
        self, conn: asyncpg.Connection, client_id: str, fields: dict[str, str | None]
    ) -> Merchant:
        values: dict[str, Any] = dict(fields)
        if values.get("settlement_account_no"):
            values["settlement_account_no"] = self.vault.encrypt(
                str(values["settlement_account_no"]), context="settlement"
            )
        if values.get("webhook_secret"):
            values["webhook_secret"] = self.vault.encrypt(
                str(values["webhook_secret"]), context="webhook"
            )
        allowed = (
            "name",
            "webhook_url",
            "webhook_secret",
            "settlement_account_name",
            "settlement_bank",
            "settlement_account_no",
        )
        cols = [c for c in allowed if c in values]
        if cols:
            sets = ", ".join(f"{c} = ${i + 2}" for i, c in enumerate(cols))
            await conn.execute(
                f"UPDATE pay_merchants SET {sets}, updated_at = now() WHERE client_id = $1",  # noqa: S608 - fixed column names
                client_id,
                *[values[c] for c in cols],
            )
        merchant = await self.get_merchant(conn, client_id)
        assert merchant is not None
        return merchant

    # idempotency keys ----------------------------------------------------------------------

    async def get_key(
        self, conn: asyncpg.Connection, merchant_id: str, key: str
    ) -> asyncpg.Record | None:
        return await conn.fetchrow(
            "SELECT * FROM pay_idempotency_keys WHERE merchant_id = $1 AND key = $2",
            merchant_id,
            key,
        )

    async def purge_keys(self, conn: asyncpg.Connection, older_than: dt.timedelta) -> int:
        status = await conn.execute(
            "DELETE FROM pay_idempotency_keys WHERE created_at < now() - $1::interval", older_than
        )
        return int(status.split()[-1])

    # orders --------------------------------------------------------------------------------

    async def insert_order(self, conn: asyncpg.Connection, order: Order) -> bool:
        """Insert a new order; False if its out_trade_no is taken (the one statement commits
        on its own unless the caller has a transaction open)."""
        return bool(
            await conn.fetchval(
                _INSERT_ORDER.format(when="")
                + " ON CONFLICT (merchant_id, out_trade_no) DO NOTHING RETURNING 1",
                *_order_args(order),
            )
        )

    async def insert_order_with_key(
        self,
        conn: asyncpg.Connection,
        order: Order,
        key: str,
        request_hash: bytes,
        status: int,
        response: dict[str, Any],
    ) -> bool | None:
        """Save the idempotency key with its response and insert the order, in one statement.

        True: written. False (nothing written): the key exists, its first request committed.
        None (nothing written): a first request with this key is still in flight. A taken
        out_trade_no raises UniqueViolationError, which undoes the key.
        """
        row = await conn.fetchrow(
            _INSERT_ORDER_WITH_KEY,
            *_order_args(order),
            key,
            request_hash,
            status,
            json.dumps(response),
        )
        assert row is not None
        return bool(row["fresh"]) if row["got"] else None

    async def get_order(
        self, conn: asyncpg.Connection, order_id: str, *, for_update: bool = False
    ) -> Order | None:
        sql = _ORDER_LOCKED if for_update else _ORDER
        row = await conn.fetchrow(sql, order_id)
        return _order(row) if row else None

    async def get_order_by_out_trade_no(
        self, conn: asyncpg.Connection, merchant_id: str, out_trade_no: str
    ) -> Order | None:
        row = await conn.fetchrow(
            "SELECT * FROM pay_orders WHERE merchant_id = $1 AND out_trade_no = $2",
            merchant_id,
            out_trade_no,
        )
        return _order(row) if row else None

    async def list_orders(
        self,
        conn: asyncpg.Connection,
        *,
        merchant_id: str | None = None,
        payer_sub: str | None = None,
        status: str | None = None,
        before: dt.datetime | None = None,
        limit: int = 50,
    ) -> list[Order]:
        rows = await conn.fetch(
            """SELECT * FROM pay_orders
                WHERE ($1::text IS NULL OR merchant_id = $1)
                  AND ($2::text IS NULL OR payer_sub = $2)
                  AND ($3::text IS NULL OR status = $3)
                  AND ($4::timestamptz IS NULL OR created_at < $4)
                ORDER BY created_at DESC LIMIT $5""",
            merchant_id,
            payer_sub,
            status,
            before,
            limit,
        )
        return [_order(r) for r in rows]

    async def update_order(self, conn: asyncpg.Connection, order_id: str, **fields: Any) -> Order:
        cols = list(fields)
        sets = ", ".join(f"{c} = ${i + 2}" for i, c in enumerate(cols))
        row = await conn.fetchrow(
            f"UPDATE pay_orders SET {sets}, updated_at = now() WHERE id = $1 RETURNING *",  # noqa: S608 - column names from code
            order_id,
            *[fields[c] for c in cols],
        )
        return _order(row)

    async def start_paying(
        self,
        conn: asyncpg.Connection,
        order_id: str,
        *,
        payer_sub: str,
        channel: str,
        channel_reference: str,
        now: dt.datetime,
        next_check_at: dt.datetime,
        hold: Journal,
    ) -> Order | None:
        """Move a payable order (open, not expired, no other payer) to ``paying`` and post
        the ``hold`` journal (once: a second pay skips it), in one statement; None (nothing
        written) if it is not payable. The row lock the UPDATE takes serialises this with
        callbacks; the statement is its own transaction unless the caller has one open."""
        ledger_ctes, ledger_args = Ledger.ctes([hold], 7, when="EXISTS (SELECT 1 FROM u)")
        row = await conn.fetchrow(
            f"""WITH u AS (
                   UPDATE pay_orders SET status = 'paying', channel = $2, channel_reference = $3,
                          payer_sub = $4, next_check_at = $6, updated_at = now()
                    WHERE id = $1 AND status IN ('created', 'paying') AND expires_at > $5
                      AND (payer_sub IS NULL OR payer_sub = $4)
                   RETURNING *),
               {ledger_ctes}
               SELECT * FROM u""",  # noqa: S608 - fixed text
            order_id,
            channel,
            channel_reference,
            payer_sub,
            now,
            next_check_at,
            *ledger_args,
        )
        return _order(row) if row else None

    async def claim_orders_to_check(
        self, conn: asyncpg.Connection, lease: dt.timedelta, limit: int
    ) -> list[Order]:
        """Open orders due for a channel query or expiry; leased so N workers share them."""
        rows = await conn.fetch(
            """UPDATE pay_orders SET next_check_at = now() + $1::interval
                WHERE id IN (SELECT id FROM pay_orders
                              WHERE status IN ('created', 'paying') AND next_check_at <= now()
                              ORDER BY next_check_at LIMIT $2 FOR UPDATE SKIP LOCKED)
            RETURNING *""",
            lease,
            limit,
        )
        return [_order(r) for r in rows]

    # refunds -------------------------------------------------------------------------------

    async def insert_refund(self, conn: asyncpg.Connection, **f: Any) -> Refund:
        row = await conn.fetchrow(
            """INSERT INTO pay_refunds (id, order_id, merchant_id, out_refund_no, amount_fen,
                   reason, kind, channel, transaction_id, status, next_check_at)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'processing', now() + interval '2 s')
               RETURNING *""",
            new_id("rfd"),
            f["order_id"],
            f["merchant_id"],
            f["out_refund_no"],
            f["amount_fen"],
            f["reason"],
            f["kind"],
            f["channel"],
            f["transaction_id"],
        )
        return _refund(row)

    async def get_refund(
        self, conn: asyncpg.Connection, refund_id: str, *, for_update: bool = False
    ) -> Refund | None:
        sql = _REFUND_LOCKED if for_update else _REFUND
        row = await conn.fetchrow(sql, refund_id)
        return _refund(row) if row else None

    async def get_refund_by_no(
        self, conn: asyncpg.Connection, merchant_id: str, out_refund_no: str
    ) -> Refund | None:
        row = await conn.fetchrow(
            "SELECT * FROM pay_refunds WHERE merchant_id = $1 AND out_refund_no = $2",
            merchant_id,
            out_refund_no,
        )
        return _refund(row) if row else None

    async def refunds_of(self, conn: asyncpg.Connection, order_ids: list[str]) -> list[Refund]:
        rows = await conn.fetch(
            "SELECT * FROM pay_refunds WHERE order_id = ANY($1::text[]) ORDER BY created_at",
            order_ids,
        )
        return [_refund(r) for r in rows]

    async def update_refund(
        self, conn: asyncpg.Connection, refund_id: str, **fields: Any
    ) -> Refund:
        cols = list(fields)
        sets = ", ".join(f"{c} = ${i + 2}" for i, c in enumerate(cols))
        row = await conn.fetchrow(
            f"UPDATE pay_refunds SET {sets} WHERE id = $1 RETURNING *",  # noqa: S608 - column names from code
            refund_id,
            *[fields[c] for c in cols],
        )
        return _refund(row)

    async def claim_refunds_to_check(
        self, conn: asyncpg.Connection, lease: dt.timedelta, limit: int
    ) -> list[Refund]:
        rows = await conn.fetch(
            """UPDATE pay_refunds SET next_check_at = now() + $1::interval
                WHERE id IN (SELECT id FROM pay_refunds
                              WHERE status = 'processing' AND next_check_at <= now()
                              ORDER BY next_check_at LIMIT $2 FOR UPDATE SKIP LOCKED)
            RETURNING *""",
            lease,
            limit,
        )
        return [_refund(r) for r in rows]

    # notifications and anomalies -------------------------------------------------------------

    async def record_notification(
        self,
        conn: asyncpg.Connection,
        channel: str,
        notification_id: str,
        kind: str,
        order_id: str | None,
        outcome: str,
        detail: dict[str, Any] | None = None,
        *,
        lock_order: bool = False,
    ) -> tuple[bool, Order | None]:
        """Record a notification: (False, None) if this one was seen before. With
        ``lock_order``, a new one also locks and returns its order (None if there is no such
        order), in the same round trip."""
        insert = """INSERT INTO pay_notifications (channel, notification_id, kind, order_id,
                        outcome, detail) VALUES ($1, $2, $3, $4, $5, $6)
                    ON CONFLICT (channel, notification_id) DO NOTHING RETURNING 1"""
        args = (channel, notification_id, kind, order_id, outcome, json.dumps(detail or {}))
        if not lock_order:
            return bool(await conn.fetchval(insert, *args)), None
        row = await conn.fetchrow(
            f"""WITH n AS ({insert}),
                   o AS (SELECT * FROM pay_orders
                          WHERE id = $4 AND EXISTS (SELECT 1 FROM n) FOR UPDATE)
               SELECT EXISTS (SELECT 1 FROM n) AS notification_fresh, o.*
                 FROM (SELECT 1) AS one LEFT JOIN o ON true""",  # noqa: S608 - fixed text
            *args,
        )
        if not row["notification_fresh"]:
            return False, None
        return True, (_order(row) if row["id"] is not None else None)

    async def mark_paid(
        self,
        conn: asyncpg.Connection,
        order: Order,
        journals: list[Journal],
        event_id: str,
        payload: dict[str, Any],
        *,
        note: tuple[str, str, str],
    ) -> None:
        """One statement: the (locked) order becomes ``order`` (paid), ``journals`` are posted,
        the ``payment.succeeded`` event goes to the outbox if the order or its merchant has a
        webhook URL, and the notification ``note`` (channel, id, outcome) gets its outcome."""
        ledger_ctes, ledger_args = Ledger.ctes(journals, 5)
        await conn.execute(
            f"""WITH u AS (
                   UPDATE pay_orders SET status = 'paid', channel = $2, transaction_id = $3,
                          paid_at = $4, next_check_at = NULL, updated_at = now()
                    WHERE id = $1 RETURNING merchant_id, notify_url),
               {ledger_ctes},
               n AS (UPDATE pay_notifications SET outcome = $18
                      WHERE channel = $16 AND notification_id = $17)
               INSERT INTO pay_events (id, merchant_id, type, order_id, url, payload)
               SELECT $19, u.merchant_id, $20, $1, COALESCE(u.notify_url, m.webhook_url),
                      $21::jsonb
                 FROM u LEFT JOIN pay_merchants m ON m.client_id = u.merchant_id
                WHERE COALESCE(u.notify_url, m.webhook_url) IS NOT NULL""",  # noqa: S608
            order.id,
            order.channel,
            order.transaction_id,
            order.paid_at,
            *ledger_args,
            *note,
            event_id,
            payload["type"],
            json.dumps(payload, ensure_ascii=False),
        )

    async def credit_open_order(
        self,
        conn: asyncpg.Connection,
        *,
        order_id: str,
        channel: str,
        transaction_id: str,
        amount_fen: int,
        paid_at: dt.datetime,
        notification_id: str,
        event_id: str,
        event_created_at: str,
    ) -> bool:
        """The common callback in one statement (no explicit transaction): if the order is
        open, of this amount, its merchant's payable account exists and the notification is
        new, the order becomes paid, the hold's void (if it was ``paying``) and the payment
        are posted, the notification is recorded as credited and ``payment.succeeded`` (the
        paid order as ``Order.public`` shows it) goes to the outbox, all or nothing.

        False (nothing written) otherwise, or if the order changed while this ran; a racing
        first record of the same notification raises UniqueViolationError (nothing written).
        The caller ensures the ``channel_clearing`` and ``pending_clearing`` accounts.
        """
        return bool(
            await conn.fetchval(
                _CREDIT_OPEN_ORDER,
                order_id,
                channel,
                transaction_id,
                paid_at,
                amount_fen,
                notification_id,
                new_id("ltx"),
                new_id("ltx"),
                event_id,
                event_created_at,
            )
        )

    async def set_notification_outcome(
        self, conn: asyncpg.Connection, channel: str, notification_id: str, outcome: str
    ) -> None:
        await conn.execute(
            "UPDATE pay_notifications SET outcome = $3 WHERE channel = $1 AND notification_id = $2",
            channel,
            notification_id,
            outcome,
        )

    async def flag(
        self,
        conn: asyncpg.Connection,
        kind: str,
        channel: str,
        order_id: str | None,
        transaction_id: str | None,
        expected: int | None,
        actual: int | None,
        action: str,
    ) -> bool:
        done = await conn.fetchval(
            """INSERT INTO pay_anomalies (id, kind, channel, order_id, transaction_id,
                   expected_fen, actual_fen, action) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
               ON CONFLICT (kind, channel, transaction_id) DO NOTHING RETURNING 1""",
            new_id("anm"),
            kind,
            channel,
            order_id,
            transaction_id,
            expected,
            actual,
            action,
        )
        return bool(done)

    async def anomalies(self, conn: asyncpg.Connection, limit: int = 100) -> list[dict[str, Any]]:
        rows = await conn.fetch(
            "SELECT * FROM pay_anomalies ORDER BY created_at DESC LIMIT $1", limit
        )
        return [dict(r) for r in rows]

    # merchant events (outbox) ----------------------------------------------------------------

    async def insert_event(
        self,
        conn: asyncpg.Connection,
        merchant_id: str,
        type_: str,
        order_id: str | None,
        url: str,
        payload: dict[str, Any],
        event_id: str,
        *,
        note: tuple[str, str, str] | None = None,
    ) -> None:
        """Insert an outbox event; with ``note`` (channel, notification id, outcome) also set
        that notification's outcome, in the same round trip."""
        body = json.dumps(payload, ensure_ascii=False)
        args = [event_id, merchant_id, type_, order_id, url, body]
        if note is None:
            await conn.execute(
                """INSERT INTO pay_events (id, merchant_id, type, order_id, url, payload)
                   VALUES ($1, $2, $3, $4, $5, $6)""",
                *args,
            )
            return
        await conn.execute(
            """WITH n AS (UPDATE pay_notifications SET outcome = $9
                           WHERE channel = $7 AND notification_id = $8)
               INSERT INTO pay_events (id, merchant_id, type, order_id, url, payload)
               VALUES ($1, $2, $3, $4, $5, $6)""",
            *args,
            *note,
        )

    async def claim_events(
        self, conn: asyncpg.Connection, lease: dt.timedelta, limit: int
    ) -> list[Event]:
        rows = await conn.fetch(
            """UPDATE pay_events SET next_attempt_at = now() + $1::interval,
                      attempts = attempts + 1
                WHERE id IN (SELECT id FROM pay_events
                              WHERE status = 'pending' AND next_attempt_at <= now()
                              ORDER BY next_attempt_at LIMIT $2 FOR UPDATE SKIP LOCKED)
            RETURNING *""",
            lease,
            limit,
        )
        return [_event(r) for r in rows]

    async def record_deliveries(
        self, conn: asyncpg.Connection, outcomes: Sequence[DeliveryOutcome]
    ) -> None:
        """Each delivery attempt's own outcome, for a batch of events, in one statement.

        Delivered: ``delivered``. Failed: ``pending`` again with its next attempt, or ``dead``
        without one (only if still pending: a redeliver meanwhile is not overwritten)."""
        await conn.execute(
            """UPDATE pay_events e SET
                   status = CASE WHEN r.ok THEN 'delivered'
                                 WHEN r.retry_at IS NULL THEN 'dead' ELSE 'pending' END,
                   delivered_at = CASE WHEN r.ok THEN now() ELSE e.delivered_at END,
                   last_status = r.status,
                   last_error = NULLIF(r.error, ''),
                   next_attempt_at = CASE WHEN r.ok THEN e.next_attempt_at
                                          ELSE COALESCE(r.retry_at, e.next_attempt_at) END
                 FROM unnest($1::text[], $2::bool[], $3::int[], $4::text[], $5::timestamptz[])
                      AS r(id, ok, status, error, retry_at)
                WHERE e.id = r.id AND (r.ok OR e.status = 'pending')""",
            [o.event_id for o in outcomes],
            [o.delivered for o in outcomes],
            [o.status for o in outcomes],
            [o.error[:500] for o in outcomes],
            [o.retry_at for o in outcomes],
        )

    async def get_merchants(
        self, conn: asyncpg.Connection, client_ids: Iterable[str]
    ) -> dict[str, Merchant]:
        rows = await conn.fetch(
            "SELECT * FROM pay_merchants WHERE client_id = ANY($1::text[])", list(client_ids)
        )
        return {r["client_id"]: self._merchant(r) for r in rows}

    async def get_event(self, conn: asyncpg.Connection, event_id: str) -> Event | None:
        row = await conn.fetchrow("SELECT * FROM pay_events WHERE id = $1", event_id)
        return _event(row) if row else None

    async def list_events(
        self, conn: asyncpg.Connection, merchant_id: str, status: str | None, limit: int
    ) -> list[Event]:
        rows = await conn.fetch(
            """SELECT * FROM pay_events WHERE merchant_id = $1
                 AND ($2::text IS NULL OR status = $2) ORDER BY created_at DESC LIMIT $3""",
            merchant_id,
            status,
            limit,
        )
        return [_event(r) for r in rows]

    async def redeliver_event(self, conn: asyncpg.Connection, event_id: str) -> Event:
        row = await conn.fetchrow(
            """UPDATE pay_events SET status = 'pending', attempts = 0, next_attempt_at = now(),
                   delivered_at = NULL WHERE id = $1 RETURNING *""",
            event_id,
        )
        return _event(row)

    # reconciliation ----------------------------------------------------------------------------

    async def ledger_items(
        self, conn: asyncpg.Connection, channel: str, start: dt.datetime, end: dt.datetime
    ) -> list[tuple[str, str, int, str | None]]:
        """Money that moved through a channel in [start, end): payments, strays, refunds."""
        rows = await conn.fetch(
            """SELECT kind, external_id, amount_fen, order_id FROM ledger_transactions
                WHERE channel = $1 AND kind IN ('payment', 'stray', 'refund')
                  AND occurred_at >= $2 AND occurred_at < $3""",
            channel,
            start,
            end,
        )
        return [(r["kind"], r["external_id"], r["amount_fen"], r["order_id"]) for r in rows]

    async def save_reconciliation(
        self, conn: asyncpg.Connection, run: dict[str, Any], differences: list[dict[str, Any]]
    ) -> None:
        await conn.execute(
            """INSERT INTO pay_reconciliations (id, bill_date, channel, matched, differences,
                   unexplained, bill_total_fen, ledger_total_fen, created_by)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)""",
            run["id"],
            run["bill_date"],
            run["channel"],
            run["matched"],
            run["differences"],
            run["unexplained"],
            run["bill_total_fen"],
            run["ledger_total_fen"],
            run["created_by"],
        )
        await conn.executemany(
            """INSERT INTO pay_reconciliation_differences (reconciliation_id, kind, item,
                   order_id, reference, ledger_fen, bill_fen, explained, action)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)""",
            [
                (
                    run["id"],
                    d["kind"],
                    d["item"],
                    d["order_id"],
                    d["reference"],
                    d["ledger_fen"],
                    d["bill_fen"],
                    d["explained"],
                    d["action"],
                )
                for d in differences
            ],
        )

    async def reconciliations(
        self, conn: asyncpg.Connection, day: dt.date | None, limit: int
    ) -> list[dict[str, Any]]:
        rows = await conn.fetch(
            """SELECT * FROM pay_reconciliations WHERE ($1::date IS NULL OR bill_date = $1)
                ORDER BY created_at DESC LIMIT $2""",
            day,
            limit,
        )
        out = []
        for r in rows:
            diffs = await conn.fetch(
                """SELECT kind, item, order_id, reference, ledger_fen, bill_fen, explained,
                          action FROM pay_reconciliation_differences
                    WHERE reconciliation_id = $1 ORDER BY id""",
                r["id"],
            )
            item = dict(r)
            item["bill_date"] = r["bill_date"].isoformat()
            item["created_at"] = r["created_at"].isoformat()
            item["differences"] = [dict(d) for d in diffs]
            out.append(item)
        return out
