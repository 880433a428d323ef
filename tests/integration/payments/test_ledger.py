"""The ledger's invariants are enforced by PostgreSQL itself, not only by our code."""

from __future__ import annotations

import secrets

import asyncpg
import pytest

from payments.ledger import Journal, Ledger, Posting, transfer
from server.bootstrap import Services


@pytest.mark.asyncio
async def test_an_unbalanced_transaction_cannot_commit(services: Services) -> None:
    ledger = Ledger()
    key = "test:" + secrets.token_hex(6)
    with pytest.raises(asyncpg.CheckViolationError):
        async with services.pool.acquire() as conn, conn.transaction():
            await ledger.post(
                conn,
                key,
                "test",
                [Posting("channel_clearing:wechatpay", 100), Posting("merchant_payable:x", -99)],
            )
    async with services.pool.acquire() as conn:
        assert not await ledger.posted(conn, key)


@pytest.mark.asyncio
async def test_raw_sql_cannot_unbalance_or_rewrite_history(services: Services) -> None:
    ledger = Ledger()
    key = "test:" + secrets.token_hex(6)
    async with services.pool.acquire() as conn:
        async with conn.transaction():
            assert await ledger.post(
                conn, key, "test", transfer("channel_clearing:alipay", "merchant_payable:y", 50)
            )
        tx = await conn.fetchval(
            "SELECT id FROM ledger_transactions WHERE idempotency_key = $1", key
        )
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute(
                "INSERT INTO ledger_entries (transaction_id, account_code, amount_fen) "
                "VALUES ($1, 'merchant_payable:y', 1)",
                tx,
            )
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute(
                "UPDATE ledger_entries SET amount_fen = 60 WHERE transaction_id = $1", tx
            )
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("DELETE FROM ledger_entries WHERE transaction_id = $1", tx)
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("DELETE FROM ledger_transactions WHERE id = $1", tx)
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("TRUNCATE ledger_entries")


@pytest.mark.asyncio
async def test_posting_is_idempotent_and_the_trial_balance_holds(services: Services) -> None:
    ledger = Ledger()
    key = "test:" + secrets.token_hex(6)
    async with services.pool.acquire() as conn:
        async with conn.transaction():
            assert await ledger.post(
                conn, key, "test", transfer("pending_clearing", "pending_payable:z", 7)
            )
        async with conn.transaction():
            assert not await ledger.post(
                conn, key, "test", transfer("pending_clearing", "pending_payable:z", 7)
            )
        count = await conn.fetchval(
            "SELECT count(*) FROM ledger_entries e JOIN ledger_transactions t "
            "ON t.id = e.transaction_id WHERE t.idempotency_key = $1",
            key,
        )
        assert count == 2
        tb = await ledger.trial_balance(conn)
    assert tb.balanced and tb.total_debits_fen == tb.total_credits_fen


@pytest.mark.asyncio
async def test_each_journal_transaction_must_balance_on_its_own(services: Services) -> None:
    # Two transactions that are unbalanced but net to zero together are still refused.
    ids = ["ltx_test" + secrets.token_hex(6) for _ in range(2)]
    async with services.pool.acquire() as conn:
        await Ledger().ensure_accounts(
            conn, [_journal("channel_clearing:alipay"), _journal("merchant_payable:w")]
        )
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute(
                """WITH t AS (
                       INSERT INTO ledger_transactions (id, idempotency_key, kind, amount_fen)
                       SELECT id, id, 'test', 5 FROM unnest($1::text[]) AS id RETURNING id)
                   INSERT INTO ledger_entries (transaction_id, account_code, amount_fen)
                   VALUES ($2, 'channel_clearing:alipay', 5), ($3, 'merchant_payable:w', -5)""",
                ids,
                ids[0],
                ids[1],
            )
        assert (
            await conn.fetchval(
                "SELECT count(*) FROM ledger_transactions WHERE id = ANY($1::text[])", ids
            )
            == 0
        )


def _journal(account: str) -> Journal:
    return Journal("k", "test", [Posting(account, 1)])


@pytest.mark.asyncio
async def test_entries_must_name_an_existing_transaction_and_account(services: Services) -> None:
    # Checked by the statement-level trigger (the foreign keys' SQLSTATE), as the foreign
    # keys did; and accounts, like journals, can be neither removed nor renamed.
    tx_id = "ltx_test" + secrets.token_hex(6)
    async with services.pool.acquire() as conn:
        await Ledger().ensure_accounts(
            conn, [_journal("channel_clearing:alipay"), _journal("merchant_payable:v")]
        )
        with pytest.raises(asyncpg.ForeignKeyViolationError):
            await conn.execute(
                """INSERT INTO ledger_entries (transaction_id, account_code, amount_fen)
                   VALUES ($1, 'channel_clearing:alipay', 5), ($1, 'merchant_payable:v', -5)""",
                tx_id,
            )
        with pytest.raises(asyncpg.ForeignKeyViolationError):
            await conn.execute(
                """WITH t AS (
                       INSERT INTO ledger_transactions (id, idempotency_key, kind, amount_fen)
                       VALUES ($1, $1, 'test', 5) RETURNING id)
                   INSERT INTO ledger_entries (transaction_id, account_code, amount_fen)
                   VALUES ($1, 'channel_clearing:alipay', 5), ($1, 'no_such_account:x', -5)""",
                tx_id,
            )
        assert (
            await conn.fetchval("SELECT count(*) FROM ledger_transactions WHERE id = $1", tx_id)
            == 0
        )
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("DELETE FROM ledger_accounts WHERE code = 'merchant_payable:v'")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute(
                "UPDATE ledger_accounts SET code = 'x' WHERE code = 'merchant_payable:v'"
            )
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("TRUNCATE ledger_accounts CASCADE")
