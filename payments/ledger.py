"""The double-entry ledger: append-only journal transactions whose entries sum to zero.

Debits are positive, credits negative. PostgreSQL enforces the invariants itself (a deferred
constraint trigger checks every transaction's sum per currency at commit; triggers forbid
UPDATE, DELETE and TRUNCATE), so a bug here cannot unbalance the books. Every posting has an
idempotency key: posting it again is a no-op (TigerBeetle's idempotent transfer ids).

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
        amount = sum(p.amount_fen for p in postings if p.amount_fen > 0)
        tx_id = new_id("ltx")
        inserted = await conn.fetchval(
            """INSERT INTO ledger_transactions (id, idempotency_key, kind, order_id, channel,
                   external_id, amount_fen, occurred_at)
               VALUES ($1, $2, $3, $4, $5, $6, $7, COALESCE($8, now()))
               ON CONFLICT (idempotency_key) DO NOTHING RETURNING id""",
            tx_id,
            key,
            kind,
            order_id,
            channel,
            external_id,
            amount,
            occurred_at,
        )
        if inserted is None:
            return False
        new = sorted({p.account for p in postings} - self._known_accounts)
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
        entries = [p for p in postings if p.amount_fen != 0]
        await conn.execute(
            """INSERT INTO ledger_entries (transaction_id, account_code, amount_fen)
               SELECT $1, * FROM unnest($2::text[], $3::bigint[])""",
            tx_id,
            [p.account for p in entries],
            [p.amount_fen for p in entries],
        )
        return True

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
