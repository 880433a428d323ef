"""What a citizen agreed that a client (mini-app) may see: scopes per client,
time-bounded and revocable, every change in the security log."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from identity.errors import NotFound


@dataclass(frozen=True)
class Consent:
    account_id: str
    client_id: str
    client_name: str
    scopes: tuple[str, ...]
    granted_at: datetime
    expires_at: datetime | None


def _consent(r: asyncpg.Record) -> Consent:
    return Consent(
        account_id=r["account_id"],
        client_id=r["client_id"],
        client_name=r["name"],
        scopes=tuple(r["scopes"]),
        granted_at=r["granted_at"],
        expires_at=r["expires_at"],
    )


_ACTIVE = "c.revoked_at IS NULL AND (c.expires_at IS NULL OR c.expires_at > now())"


class Consents:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def grant(
        self,
        account_id: str,
        client_id: str,
        scopes: list[str],
        expires_at: datetime | None = None,
        ip: str = "",
    ) -> Consent:
        """Add scopes to the citizen's consent for this client (a revoked one starts over)."""
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                """INSERT INTO consents (account_id, client_id, scopes, expires_at)
                   VALUES ($1, $2, $3, $4)
                   ON CONFLICT (account_id, client_id) DO UPDATE SET
                     scopes = ARRAY(SELECT DISTINCT unnest(
                         CASE WHEN consents.revoked_at IS NULL THEN consents.scopes
                              ELSE '{}'::text[] END || EXCLUDED.scopes) ORDER BY 1),
                     granted_at = now(), expires_at = EXCLUDED.expires_at, revoked_at = NULL""",
                account_id,
                client_id,
                scopes,
                expires_at,
            )
            await conn.execute(
                """INSERT INTO security_events (account_id, kind, detail, ip)
                   VALUES ($1, 'consent-granted', $2::jsonb, $3)""",
                account_id,
                json.dumps({"client_id": client_id, "scopes": scopes}),
                ip,
            )
            row = await conn.fetchrow(
                """SELECT c.*, o.name FROM consents c JOIN oauth_clients o USING (client_id)
                   WHERE c.account_id = $1 AND c.client_id = $2""",
                account_id,
                client_id,
            )
        return _consent(row)

    async def get(self, account_id: str, client_id: str) -> Consent | None:
        row = await self.pool.fetchrow(
            f"""SELECT c.*, o.name FROM consents c JOIN oauth_clients o USING (client_id)
                WHERE c.account_id = $1 AND c.client_id = $2 AND {_ACTIVE}""",  # noqa: S608
            account_id,
            client_id,
        )
        return _consent(row) if row else None

    async def has(self, account_id: str, client_id: str, scope: str) -> bool:
        consent = await self.get(account_id, client_id)
        return consent is not None and scope in consent.scopes

    async def list(self, account_id: str) -> list[Consent]:
        rows = await self.pool.fetch(
            f"""SELECT c.*, o.name FROM consents c JOIN oauth_clients o USING (client_id)
                WHERE c.account_id = $1 AND {_ACTIVE} ORDER BY c.granted_at DESC""",  # noqa: S608
            account_id,
        )
        return [_consent(r) for r in rows]

    async def revoke(self, account_id: str, client_id: str, ip: str = "") -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            status = await conn.execute(
                """UPDATE consents SET revoked_at = now()
                   WHERE account_id = $1 AND client_id = $2 AND revoked_at IS NULL""",
                account_id,
                client_id,
            )
            if not status.endswith(" 1"):
                raise NotFound("No consent for this client.")
            await conn.execute(
                """INSERT INTO security_events (account_id, kind, detail, ip)
                   VALUES ($1, 'consent-revoked', $2::jsonb, $3)""",
                account_id,
                json.dumps({"client_id": client_id}),
                ip,
            )
