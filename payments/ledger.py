"""The double-entry ledger: append-only journal transactions whose entries sum to zero.

Debits are positive, credits negative. PostgreSQL enforces the invariants itself (a
statement-level trigger checks, at the end of every statement inserting entries, that their
journal transactions and accounts exist and that they sum to zero per journal transaction and
currency; triggers forbid UPDATE, DELETE and TRUNCATE of accounts, journals and entries), so a
bug here cannot unbalance the books. Every posting has an idempotency key: posting it
again is a no-op (TigerBeetle's idempotent transfer ids).

Accounts:
  channel_clearing:<channel>   asset     money the channel holds for us
  pending_clearing             asset     two-phase hold: a payment is under way
  pending_payable:<merchant>   liability two-phase hold, the merchant's side
  merchant_payable:<merchant>  liability what we owe the merchant
  refunds_in_flight:<channel>  liability refunds sent to the channel, not confirmed yet
  stray_payments:<channel>     liability money received for a closed or already paid order
  channel_fees:<channel>       expense   the channel's fees from its bill
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

import asyncpg

from identity.ids import new_id

ACCOUNT_KINDS = {
    "channel_clearing": "asset",
    "pending_clearing": "asset",
    "pending_payable": "liability",
    "merchant_payable": "liability",
    "refunds_in_flight": "liability",
    "stray_payments": "liability",
    "channel_fees": "expense",
}


@dataclass(frozen=True)
class Posting:
    account: str
    amount_fen: int  # debit > 0, credit < 0


@dataclass(frozen=True)
class AccountBalance:
    code: str
    kind: str
    currency: str
    debits_fen: int
    credits_fen: int

    @property
    def balance_fen(self) -> int:
        return self.debits_fen - self.credits_fen


@dataclass(frozen=True)
class TrialBalance:
    accounts: list[AccountBalance]
    total_debits_fen: int
    total_credits_fen: int
    unbalanced_transactions: int

    @property
    def balanced(self) -> bool:
        return self.total_debits_fen == self.total_credits_fen and self.unbalanced_transactions == 0


@dataclass(frozen=True)
class Journal:
    """One journal transaction to post: its idempotency key, kind, postings and references."""

    key: str
    kind: str
    postings: list[Posting]
    order_id: str | None = None
    channel: str | None = None
    external_id: str | None = None
    occurred_at: dt.datetime | None = None


def transfer(debit: str, credit: str, amount_fen: int) -> list[Posting]:
    return [Posting(debit, amount_fen), Posting(credit, -amount_fen)]


class Ledger:
    def __init__(self) -> None:
        self._known_accounts: set[str] = set()  # created already: skip the upsert

    async def post(
        self,
        conn: asyncpg.Connection,
        key: str,
        kind: str,
        postings: list[Posting],
        *,
        order_id: str | None = None,
        channel: str | None = None,
        external_id: str | None = None,
        occurred_at: dt.datetime | None = None,
    ) -> bool:
        """Post one journal transaction in the caller's transaction; False if already posted."""
        journal = Journal(key, kind, postings, order_id, channel, external_id, occurred_at)
        return bool(await self.post_all(conn, [journal]))

    async def ensure_accounts(self, conn: asyncpg.Connection, journals: list[Journal]) -> None:
        """Create the accounts the journals use that are not known to exist (rare: first use)."""
        await self.ensure_account_codes(conn, {p.account for j in journals for p in j.postings})

    async def ensure_account_codes(self, conn: asyncpg.Connection, codes: Iterable[str]) -> None:
        """Create the accounts not known to exist (rare: first use); kinds from the codes."""
        new = sorted(set(codes) - self._known_accounts)
        if new:
            inserted = await conn.fetch(
                """INSERT INTO ledger_accounts (code, kind)
                   SELECT * FROM unnest($1::text[], $2::text[]) ON CONFLICT (code) DO NOTHING
                   RETURNING code""",
                new,
                [ACCOUNT_KINDS[c.split(":", 1)[0]] for c in new],
            )
            # Cache only accounts committed before: ours could still be rolled back.
            self._known_accounts.update(set(new) - {r["code"] for r in inserted})

    @staticmethod
    def ctes(
        journals: list[Journal], first: int, *, when: str | None = None
    ) -> tuple[str, list[object]]:
        """The ``WITH`` items (``ledger_tx``, ``ledger_en``) that post ``journals`` inside a
        larger statement, and their arguments (numbered from ``$first``).

        ``when`` is an SQL condition (e.g. ``EXISTS (SELECT 1 FROM u)``): nothing is posted
        unless it holds. ``ledger_tx`` returns the idempotency keys posted now; a key posted
        before is skipped, entries and all. The database checks each balance at commit.
        """
        ids = [new_id("ltx") for _ in journals]
        entry_tx: list[str] = []
        entry_account: list[str] = []
        entry_amount: list[int] = []
        for tx_id, j in zip(ids, journals, strict=True):
            for p in j.postings:
                if p.amount_fen != 0:
                    entry_tx.append(tx_id)
                    entry_account.append(p.account)
                    entry_amount.append(p.amount_fen)
        n = [f"${first + i}" for i in range(11)]
        sql = f"""ledger_tx AS (
                   INSERT INTO ledger_transactions (id, idempotency_key, kind, order_id, channel,
                       external_id, amount_fen, occurred_at)
                   SELECT id, key, kind, order_id, channel, external_id, amount,
                          COALESCE(occurred_at, now())
                     FROM unnest({n[0]}::text[], {n[1]}::text[], {n[2]}::text[], {n[3]}::text[],
                                 {n[4]}::text[], {n[5]}::text[], {n[6]}::bigint[],
                                 {n[7]}::timestamptz[])
                          AS j(id, key, kind, order_id, channel, external_id, amount, occurred_at)
                    WHERE {when or "true"}
                   ON CONFLICT (idempotency_key) DO NOTHING
                   RETURNING id, idempotency_key),
               ledger_en AS (
                   INSERT INTO ledger_entries (transaction_id, account_code, amount_fen)
                   SELECT x.tx, x.account, x.amount
                     FROM unnest({n[8]}::text[], {n[9]}::text[], {n[10]}::bigint[])
                          AS x(tx, account, amount)
                    WHERE x.tx = ANY (ARRAY(SELECT id FROM ledger_tx)))"""  # noqa: S608 - fixed text
        args: list[object] = [
            ids,
            [j.key for j in journals],
            [j.kind for j in journals],
            [j.order_id for j in journals],
            [j.channel for j in journals],
            [j.external_id for j in journals],
            [sum(p.amount_fen for p in j.postings if p.amount_fen > 0) for j in journals],
            [j.occurred_at for j in journals],
            entry_tx,
            entry_account,
            entry_amount,
        ]
        return sql, args

    async def post_all(self, conn: asyncpg.Connection, journals: list[Journal]) -> set[str]:
        """Post journal transactions in one round trip (in the caller's transaction).

        Returns the idempotency keys posted now; a key posted before is skipped, entries
        and all. The database still checks every transaction's balance at commit.
        """
        await self.ensure_accounts(conn, journals)
        ctes, args = self.ctes(journals, 1)
        rows = await conn.fetch(f"WITH {ctes} SELECT idempotency_key FROM ledger_tx", *args)  # noqa: S608
        return {r["idempotency_key"] for r in rows}

    async def posted(self, conn: asyncpg.Connection, key: str) -> bool:
        return bool(
            await conn.fetchval("SELECT 1 FROM ledger_transactions WHERE idempotency_key = $1", key)
        )

    async def trial_balance(self, conn: asyncpg.Connection) -> TrialBalance:
        rows = await conn.fetch(
            """SELECT a.code, a.kind, e.currency,
                      COALESCE(sum(e.amount_fen) FILTER (WHERE e.amount_fen > 0), 0)::bigint
                          AS debits,
                      COALESCE(-sum(e.amount_fen) FILTER (WHERE e.amount_fen < 0), 0)::bigint
                          AS credits
                 FROM ledger_accounts a JOIN ledger_entries e ON e.account_code = a.code
                GROUP BY a.code, a.kind, e.currency ORDER BY a.code"""
        )
        unbalanced = await conn.fetchval(
            """SELECT count(*) FROM (SELECT transaction_id FROM ledger_entries
                 GROUP BY transaction_id, currency HAVING sum(amount_fen) <> 0) t"""
        )
        accounts = [
            AccountBalance(r["code"], r["kind"], r["currency"], int(r["debits"]), int(r["credits"]))
            for r in rows
        ]
        return TrialBalance(
            accounts,
            sum(a.debits_fen for a in accounts),
            sum(a.credits_fen for a in accounts),
            int(unbalanced),
        )

    async def history(
        self, conn: asyncpg.Connection, account: str, limit: int = 100
    ) -> list[dict[str, object]]:
        """An account's entries, newest first, with the running balance after each."""
        rows = await conn.fetch(
            """SELECT e.id, e.amount_fen, e.created_at, t.kind, t.order_id, t.external_id,
                      (sum(e.amount_fen) OVER (ORDER BY e.id))::bigint AS balance_fen
                 FROM ledger_entries e JOIN ledger_transactions t ON t.id = e.transaction_id
                WHERE e.account_code = $1 ORDER BY e.id DESC LIMIT $2""",
            account,
            limit,
        )
        return [dict(r) for r in rows]
