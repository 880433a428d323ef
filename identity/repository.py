"""All SQL of the identity kernel: accounts, sessions, refresh tokens, signing
keys, units, role grants, the security log and the SMS outbox.

Every method takes the connection of the caller's transaction; the service
owns the transaction.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import asyncpg

from identity.crypto import Vault
from identity.domain import Account, RoleGrant, SecurityEvent, Session, Unit
from identity.ids import new_id
from identity.keys import SigningKey, load_private_pem

Conn = asyncpg.Connection


class IdentityRepository:
    def __init__(self, vault: Vault) -> None:
        self.vault = vault

    # accounts -----------------------------------------------------------------

    def _account(self, r: asyncpg.Record) -> Account:
        return Account(
            id=r["id"],
            phone=self.vault.decrypt(r["phone_enc"], context="phone"),
            assurance_level=r["assurance_level"],
            created_at=r["created_at"],
            real_name_at=r["real_name_at"],
            face_at=r["face_at"],
        )

    async def account(self, conn: Conn, account_id: str) -> Account | None:
        r = await conn.fetchrow("SELECT * FROM accounts WHERE id = $1", account_id)
        return self._account(r) if r else None

    async def get_or_create_account(self, conn: Conn, phone: str) -> tuple[Account, bool]:
        index = self.vault.blind_index(phone, context="phone")
        r = await conn.fetchrow(
            """INSERT INTO accounts (id, phone_enc, phone_index) VALUES ($1, $2, $3)
               ON CONFLICT (phone_index) DO NOTHING RETURNING *""",
            new_id("usr"),
            self.vault.encrypt(phone, context="phone"),
            index,
        )
        if r is not None:
            return self._account(r), True
        r = await conn.fetchrow("SELECT * FROM accounts WHERE phone_index = $1", index)
        return self._account(r), False

    async def sign_in(
        self,
        conn: Conn,
        phone: str,
        *,
        session_id: str,
        device: str,
        ip: str,
        expires_at: datetime,
        refresh_hash: bytes,
    ) -> tuple[Account, bool, list[str]]:
        """Find or create the account, open a session with its first refresh token,
        log the sign-in, and read the role claims: one round trip, one transaction
        (sign-in is the hottest write path)."""
        r = await conn.fetchrow(
            """WITH acc AS (
                 INSERT INTO accounts (id, phone_enc, phone_index) VALUES ($1, $2, $3)
                 ON CONFLICT (phone_index) DO UPDATE SET phone_index = EXCLUDED.phone_index
                 RETURNING *, (xmax = 0) AS created
               ), ses AS (
                 INSERT INTO sessions (id, account_id, device, ip, expires_at)
                 SELECT $4, id, $5, $6, $7 FROM acc RETURNING id
               ), rt AS (
                 INSERT INTO refresh_tokens (token_hash, session_id) SELECT $8, id FROM ses
               ), ev AS (
                 INSERT INTO security_events (account_id, kind, detail, ip)
                 SELECT id, 'sign-in',
                        jsonb_build_object('method', 'sms-otp', 'new_account', created), $6
                 FROM acc
               )
               SELECT acc.*, ARRAY(
                 SELECT CASE WHEN g.unit_id = '' THEN g.role ELSE g.role || ':' || g.unit_id END
                 FROM role_grants g WHERE g.account_id = acc.id ORDER BY g.role, g.unit_id
               ) AS roles FROM acc""",
            new_id("usr"),
            self.vault.encrypt(phone, context="phone"),
            self.vault.blind_index(phone, context="phone"),
            session_id,
            device[:200],
            ip,
            expires_at,
            refresh_hash,
        )
        return self._account(r), bool(r["created"]), list(r["roles"])

    # sessions and refresh tokens ------------------------------------------------

    async def session(self, conn: Conn, sid: str) -> Session | None:
        r = await conn.fetchrow("SELECT * FROM sessions WHERE id = $1", sid)
        return _session(r) if r else None

    async def sessions_of(self, conn: Conn, account_id: str) -> list[Session]:
        rows = await conn.fetch(
            """SELECT * FROM sessions WHERE account_id = $1 AND revoked_at IS NULL
               AND expires_at > now() ORDER BY last_used_at DESC""",
            account_id,
        )
        return [_session(r) for r in rows]

    async def revoke_session(self, conn: Conn, sid: str, reason: str) -> bool:
        status = await conn.execute(
            """UPDATE sessions SET revoked_at = now(), revoked_reason = $2
               WHERE id = $1 AND revoked_at IS NULL""",
            sid,
            reason,
        )
        return status.endswith(" 1")

    async def touch_session(self, conn: Conn, sid: str) -> None:
        await conn.execute("UPDATE sessions SET last_used_at = now() WHERE id = $1", sid)

    async def add_refresh_token(self, conn: Conn, token_hash: bytes, sid: str) -> None:
        await conn.execute(
            "INSERT INTO refresh_tokens (token_hash, session_id) VALUES ($1, $2)", token_hash, sid
        )

    async def consume_refresh_token(self, conn: Conn, token_hash: bytes) -> str | None:
        """Mark the token used; return its session id, or None if it was not unused.

        The conditional UPDATE is the serialisation point: of two concurrent
        refreshes with one token exactly one sees a row.
        """
        return await conn.fetchval(
            """UPDATE refresh_tokens SET used_at = now()
               WHERE token_hash = $1 AND used_at IS NULL RETURNING session_id""",
            token_hash,
        )

    async def refresh_token_session(self, conn: Conn, token_hash: bytes) -> str | None:
        return await conn.fetchval(
            "SELECT session_id FROM refresh_tokens WHERE token_hash = $1", token_hash
        )

    # signing keys ----------------------------------------------------------------

    async def signing_keys(self, conn: Conn) -> list[SigningKey]:
        rows = await conn.fetch(
            """SELECT * FROM signing_keys
               WHERE publish_until IS NULL OR publish_until > now() ORDER BY created_at"""
        )
        return [
            SigningKey(
                kid=r["kid"],
                alg=r["alg"],
                private_key=load_private_pem(
                    self.vault.decrypt(r["private_enc"], context=f"key:{r['kid']}")
                ),
                created_at=r["activates_at"],
                retired_at=r["retired_at"],
                publish_until=r["publish_until"],
            )
            for r in rows
        ]

    async def add_signing_key(
        self, conn: Conn, kid: str, alg: str, pem: str, activates_at: datetime
    ) -> None:
        await conn.execute(
            """INSERT INTO signing_keys (kid, alg, private_enc, activates_at)
               VALUES ($1, $2, $3, $4)""",
            kid,
            alg,
            self.vault.encrypt(pem, context=f"key:{kid}"),
            activates_at,
        )

    async def retire_signing_keys(
        self, conn: Conn, except_kid: str, retired_at: datetime, publish_until: datetime
    ) -> None:
        await conn.execute(
            """UPDATE signing_keys SET retired_at = $2, publish_until = $3
               WHERE kid <> $1 AND retired_at IS NULL""",
            except_kid,
            retired_at,
            publish_until,
        )

    # units and roles ----------------------------------------------------------------

    async def create_unit(
        self, conn: Conn, code: str, name_zh: str, name_en: str, kind: str, district_code: str
    ) -> tuple[Unit, bool]:
        r = await conn.fetchrow(
            """INSERT INTO units (id, code, name_zh, name_en, kind, district_code)
               VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (code) DO NOTHING RETURNING *""",
            new_id("unt"),
            code,
            name_zh,
            name_en,
            kind,
            district_code,
        )
        if r is not None:
            return _unit(r), True
        r = await conn.fetchrow("SELECT * FROM units WHERE code = $1", code)
        return _unit(r), False

    async def unit(self, conn: Conn, unit_id: str) -> Unit | None:
        r = await conn.fetchrow("SELECT * FROM units WHERE id = $1", unit_id)
        return _unit(r) if r else None

    async def units(self, conn: Conn, kind: str | None, limit: int, offset: int) -> list[Unit]:
        rows = await conn.fetch(
            """SELECT * FROM units WHERE ($1::text IS NULL OR kind = $1)
               ORDER BY kind, code LIMIT $2 OFFSET $3""",
            kind,
            limit,
            offset,
        )
        return [_unit(r) for r in rows]

    async def grant_role(
        self, conn: Conn, account_id: str, role: str, unit_id: str | None, granted_by: str | None
    ) -> bool:
        status = await conn.execute(
            """INSERT INTO role_grants (account_id, role, unit_id, granted_by)
               VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING""",
            account_id,
            role,
            unit_id or "",
            granted_by,
        )
        return status.endswith(" 1")

    async def roles_of(self, conn: Conn, account_id: str) -> list[RoleGrant]:
        rows = await conn.fetch(
            "SELECT role, unit_id FROM role_grants WHERE account_id = $1 ORDER BY role, unit_id",
            account_id,
        )
        return [RoleGrant(account_id, r["role"], r["unit_id"] or None) for r in rows]

    async def has_role(
        self, conn: Conn, account_id: str, roles: tuple[str, ...], unit_id: str | None
    ) -> bool:
        return bool(
            await conn.fetchval(
                """SELECT EXISTS (SELECT 1 FROM role_grants WHERE account_id = $1
                   AND role = ANY($2::text[]) AND unit_id = $3)""",
                account_id,
                list(roles),
                unit_id or "",
            )
        )

    # security log and SMS outbox ----------------------------------------------------

    async def record_event(
        self, conn: Conn, account_id: str | None, kind: str, detail: dict[str, Any], ip: str = ""
    ) -> None:
        await conn.execute(
            """INSERT INTO security_events (account_id, kind, detail, ip)
               VALUES ($1, $2, $3::jsonb, $4)""",
            account_id,
            kind,
            json.dumps(detail),
            ip,
        )

    async def record_phone_event(
        self, conn: Conn, phone: str, kind: str, detail: dict[str, Any], ip: str
    ) -> None:
        """Log an event about a phone number: on its account if one exists, so that
        the citizen sees failed attempts on their number."""
        await conn.execute(
            """INSERT INTO security_events (account_id, kind, detail, ip)
               VALUES ((SELECT id FROM accounts WHERE phone_index = $1), $2, $3::jsonb, $4)""",
            self.vault.blind_index(phone, context="phone"),
            kind,
            json.dumps(detail),
            ip,
        )

    async def events_of(
        self, conn: Conn, account_id: str, before: int | None, limit: int
    ) -> list[SecurityEvent]:
        rows = await conn.fetch(
            """SELECT * FROM security_events WHERE account_id = $1
               AND ($2::bigint IS NULL OR id < $2) ORDER BY id DESC LIMIT $3""",
            account_id,
            before,
            limit,
        )
        return [
            SecurityEvent(r["id"], r["kind"], json.loads(r["detail"]), r["ip"], r["created_at"])
            for r in rows
        ]

    async def store_sms(self, conn: Conn, phone: str, body: str) -> None:
        # The outbox is the development SMS adapter: a message lost in a crash is as
        # harmless as an SMS lost by a carrier (the citizen asks for a new code), so
        # its commit does not wait for the WAL flush (synchronous_commit off for
        # this one transaction, set in the same statement: no extra round trip).
        await conn.execute(
            """WITH async_commit AS (SELECT set_config('synchronous_commit', 'off', true))
               INSERT INTO sms_outbox (phone_index, phone_enc, body_enc)
               SELECT $1, $2, $3 FROM async_commit""",
            self.vault.blind_index(phone, context="phone"),
            self.vault.encrypt(phone, context="phone"),
            self.vault.encrypt(body, context="sms"),
        )

    async def sms_for(self, conn: Conn, phone: str, limit: int) -> list[tuple[datetime, str]]:
        rows = await conn.fetch(
            """SELECT * FROM (SELECT id, created_at, body_enc FROM sms_outbox
               WHERE phone_index = $1 ORDER BY id DESC LIMIT $2) t ORDER BY id""",
            self.vault.blind_index(phone, context="phone"),
            limit,
        )
        return [(r["created_at"], self.vault.decrypt(r["body_enc"], context="sms")) for r in rows]


def _session(r: asyncpg.Record) -> Session:
    return Session(
        id=r["id"],
        account_id=r["account_id"],
        device=r["device"],
        ip=r["ip"],
        created_at=r["created_at"],
        last_used_at=r["last_used_at"],
        expires_at=r["expires_at"],
        revoked_at=r["revoked_at"],
    )


def _unit(r: asyncpg.Record) -> Unit:
    return Unit(
        id=r["id"],
        code=r["code"],
        name_zh=r["name_zh"],
        name_en=r["name_en"],
        kind=r["kind"],
        district_code=r["district_code"],
        created_at=r["created_at"],
    )
