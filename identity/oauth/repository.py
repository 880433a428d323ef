"""All SQL of the provider: grants, mini-app refresh tokens,
the claims read from ``accounts`` and client look-ups.

Every method takes the connection of the caller's transaction.
"""

from __future__ import annotations

from datetime import datetime

import asyncpg

from identity.clients import Client, _client
from identity.crypto import Vault
from identity.oauth.domain import AccountClaims, Grant


def _grant(r: asyncpg.Record) -> Grant:
    return Grant(
        id=r["id"],
        client_id=r["client_id"],
        account_id=r["account_id"],
        kind=r["kind"],
        scopes=tuple(r["scopes"]),
        acr=r["acr"],
        auth_time=r["auth_time"],
        created_at=r["created_at"],
        exchanged_at=r["exchanged_at"],
        revoked_at=r["revoked_at"],
    )


class OAuthRepository:
    def __init__(self, vault: Vault) -> None:
        self.vault = vault

    # grants ----------------------------------------------------------------------------

    async def create_grant(
        self,
        conn: asyncpg.Connection,
        *,
        grant_id: str,
        client_id: str,
        account_id: str,
        kind: str,
        scopes: list[str],
        acr: int,
        auth_time: datetime,
    ) -> None:
        await conn.execute(
            """INSERT INTO oauth_grants (id, client_id, account_id, kind, scopes, acr, auth_time)
               VALUES ($1, $2, $3, $4, $5, $6, $7)""",
            grant_id,
            client_id,
            account_id,
            kind,
            scopes,
            acr,
            auth_time,
        )

    async def mark_exchanged(self, conn: asyncpg.Connection, grant_id: str) -> Grant | None:
        """The serialisation point with a revocation: the row lock orders them."""
        r = await conn.fetchrow(
            """UPDATE oauth_grants SET exchanged_at = now()
               WHERE id = $1 AND revoked_at IS NULL AND exchanged_at IS NULL RETURNING *""",
            grant_id,
        )
        return _grant(r) if r else None

    async def grant(
        self, conn: asyncpg.Connection, grant_id: str, *, lock: bool = False
    ) -> Grant | None:
        if lock:
            r = await conn.fetchrow("SELECT * FROM oauth_grants WHERE id = $1 FOR UPDATE", grant_id)
        else:
            r = await conn.fetchrow("SELECT * FROM oauth_grants WHERE id = $1", grant_id)
        return _grant(r) if r else None

    async def revoke_grant(
        self, conn: asyncpg.Connection, grant_id: str, reason: str, *, only_exchanged: bool = False
    ) -> Grant | None:
        r = await conn.fetchrow(
            """UPDATE oauth_grants SET revoked_at = now(), revoked_reason = $2
               WHERE id = $1 AND revoked_at IS NULL
               AND (NOT $3::bool OR exchanged_at IS NOT NULL) RETURNING *""",
            grant_id,
            reason,
            only_exchanged,
        )
        return _grant(r) if r else None

    async def revoke_grants_for(
        self, conn: asyncpg.Connection, account_id: str, client_id: str, reason: str
    ) -> int:
        status = await conn.execute(
            """UPDATE oauth_grants SET revoked_at = now(), revoked_reason = $3
               WHERE account_id = $1 AND client_id = $2 AND revoked_at IS NULL""",
            account_id,
            client_id,
            reason,
        )
        return int(status.split()[-1])

    # refresh tokens -----------------------------------------------------------------------

    async def add_refresh_token(
        self,
        conn: asyncpg.Connection,
        token_hash: bytes,
        grant_id: str,
        client_id: str,
        expires_at: datetime,
    ) -> None:
        await conn.execute(
            """INSERT INTO oauth_refresh_tokens (token_hash, grant_id, client_id, expires_at)
               VALUES ($1, $2, $3, $4)""",
            token_hash,
            grant_id,
            client_id,
            expires_at,
        )

    async def consume_refresh_token(
        self, conn: asyncpg.Connection, token_hash: bytes
    ) -> asyncpg.Record | None:
        """Mark an unused token used; of two concurrent refreshes exactly one sees a row."""
        return await conn.fetchrow(
            """UPDATE oauth_refresh_tokens SET used_at = now()
               WHERE token_hash = $1 AND used_at IS NULL
               RETURNING grant_id, client_id, expires_at""",
            token_hash,
        )

    async def refresh_token(
        self, conn: asyncpg.Connection, token_hash: bytes
    ) -> asyncpg.Record | None:
        return await conn.fetchrow(
            "SELECT grant_id, client_id, used_at FROM oauth_refresh_tokens WHERE token_hash = $1",
            token_hash,
        )

    # accounts and clients --------------------------------------------------------------------

    async def account_claims(
        self, conn: asyncpg.Connection, account_id: str
    ) -> AccountClaims | None:
        # name_enc / id_number_enc are written by real-name verification (encrypted at rest).
        r = await conn.fetchrow(
            """SELECT phone_enc, name_enc, id_number_enc, assurance_level
               FROM accounts WHERE id = $1""",
            account_id,
        )
        if r is None:
            return None
        return AccountClaims(
            phone=self.vault.decrypt(r["phone_enc"], context="phone"),
            name=self.vault.decrypt(r["name_enc"], context="name") if r["name_enc"] else None,
            id_number=(
                self.vault.decrypt(r["id_number_enc"], context="id_number")
                if r["id_number_enc"]
                else None
            ),
            assurance_level=r["assurance_level"],
        )

    async def client_for_app(
        self, conn: asyncpg.Connection, app_or_client_id: str
    ) -> Client | None:
        """The mini-app platform creates one client per app: look up by app id or client id."""
        r = await conn.fetchrow(
            """SELECT * FROM oauth_clients WHERE app_id = $1 OR client_id = $1
               ORDER BY (client_id = $1) DESC, created_at LIMIT 1""",
            app_or_client_id,
        )
        return _client(r) if r else None

    async def client_by_name(
        self, conn: asyncpg.Connection, unit_id: str, name: str
    ) -> Client | None:
        r = await conn.fetchrow(
            """SELECT * FROM oauth_clients WHERE unit_id = $1 AND name = $2
               ORDER BY created_at LIMIT 1""",
            unit_id,
            name,
        )
        return _client(r) if r else None

    async def unit_id(self, conn: asyncpg.Connection, id_or_code: str) -> str | None:
        value: str | None = await conn.fetchval(
            "SELECT id FROM units WHERE id = $1 OR code = $1 LIMIT 1", id_or_code
        )
        return value

    async def session_auth(
        self, conn: asyncpg.Connection, sid: str, account_id: str
    ) -> datetime | None:
        """When the session's authentication happened, if it is still active."""
        value: datetime | None = await conn.fetchval(
            """SELECT created_at FROM sessions WHERE id = $1 AND account_id = $2
               AND revoked_at IS NULL AND expires_at > now()""",
            sid,
            account_id,
        )
        return value

    async def assurance_level(self, conn: asyncpg.Connection, account_id: str) -> int | None:
        value: int | None = await conn.fetchval(
            "SELECT assurance_level FROM accounts WHERE id = $1", account_id
        )
        return value
