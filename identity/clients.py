"""The OAuth 2 client registry: one client per mini-app (or a unit's server).

A confidential client has a secret shown once and stored hashed (SHA-256 of
32 random bytes; rotation keeps the previous secret valid for an overlap
window). Client-credentials tokens carry ``kind=client``, the client id and
its owning unit, so every context can check server-to-server calls locally.
"""

from __future__ import annotations

import json
import logging
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg
import redis.asyncio as aioredis

from identity.client_assertions import (
    MAX_LIFETIME,
    AssertionRefused,
    check_public_jwk,
    unverified_client_id,
    verify,
)
from identity.crypto import constant_time_equal, token_hash
from identity.errors import DomainError, NotFound, ValidationError
from identity.ids import new_id
from identity.tokens import TokenService

CLIENT_TYPES = ("confidential", "public")
log = logging.getLogger("identity.clients")


class InvalidClient(DomainError):
    code = "invalid-client"
    kind = "unauthorized"
    title = "Client authentication failed"


@dataclass(frozen=True)
class Client:
    client_id: str
    name: str
    unit_id: str
    app_id: str | None
    client_type: str
    redirect_uris: tuple[str, ...]
    allowed_scopes: tuple[str, ...]
    created_at: datetime
    disabled_at: datetime | None


def _client(r: asyncpg.Record) -> Client:
    return Client(
        client_id=r["client_id"],
        name=r["name"],
        unit_id=r["unit_id"],
        app_id=r["app_id"],
        client_type=r["client_type"],
        redirect_uris=tuple(r["redirect_uris"]),
        allowed_scopes=tuple(r["allowed_scopes"]),
        created_at=r["created_at"],
        disabled_at=r["disabled_at"],
    )


class ClientRegistry:
    def __init__(self, pool: asyncpg.Pool, tokens: TokenService) -> None:
        self.pool = pool
        self.tokens = tokens

    async def create(
        self,
        *,
        unit_id: str,
        name: str,
        client_type: str = "confidential",
        redirect_uris: tuple[str, ...] = (),
        allowed_scopes: tuple[str, ...] = (),
        app_id: str | None = None,
        public_jwk: object = None,
        conn: asyncpg.Connection | None = None,
    ) -> tuple[Client, str | None]:
        """Register a client; return it and its secret (shown once; None if public or
        if it authenticates with ``public_jwk``, its key for ``private_key_jwt``)."""
        if client_type not in CLIENT_TYPES:
            raise ValidationError("client_type", "Must be confidential or public.")
        if not name.strip():
            raise ValidationError("name", "A client name is required.")
        jwk = None
        if public_jwk is not None:
            if client_type != "confidential":
                raise ValidationError("public_jwk", "Only a confidential client has a key.")
            jwk = json.dumps(check_public_jwk(public_jwk))
        with_secret = client_type == "confidential" and jwk is None
        secret = "cs_" + secrets.token_urlsafe(32) if with_secret else None
        sql = """INSERT INTO oauth_clients (client_id, name, unit_id, app_id, client_type,
                     secret_hash, redirect_uris, allowed_scopes, public_jwk)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb) RETURNING *"""
        args = (
            new_id("cli"),
            name.strip(),
            unit_id,
            app_id,
            client_type,
            token_hash(secret) if secret else None,
            list(redirect_uris),
            list(allowed_scopes),
            jwk,
        )
        try:
            if conn is not None:
                row = await conn.fetchrow(sql, *args)
            else:
                row = await self.pool.fetchrow(sql, *args)
        except asyncpg.ForeignKeyViolationError:
            raise NotFound("No such unit.") from None
        return _client(row), secret

    async def get(self, client_id: str) -> Client:
        row = await self.pool.fetchrow(
            "SELECT * FROM oauth_clients WHERE client_id = $1", client_id
        )
        if row is None:
            raise NotFound("No such client.")
        return _client(row)

    async def authenticate(self, client_id: object, secret: object) -> Client:
        """Check a confidential client's secret in constant time (current or previous)."""
        if not isinstance(client_id, str) or not isinstance(secret, str) or len(secret) > 200:
            raise InvalidClient("Unknown client or wrong secret.")
        row = await self.pool.fetchrow(
            "SELECT * FROM oauth_clients WHERE client_id = $1", client_id
        )
        given = token_hash(secret)
        hashes = []
        if row is not None and row["disabled_at"] is None:
            if row["secret_hash"] is not None:
                hashes.append(bytes(row["secret_hash"]))
            until = row["previous_valid_until"]
            if row["previous_secret_hash"] is not None and until and until > datetime.now(UTC):
                hashes.append(bytes(row["previous_secret_hash"]))  # within the overlap
        # Every candidate compared (and one dummy comparison when there is none).
        matched = [constant_time_equal(expected, given) for expected in hashes or [given]]
        if not hashes or not any(matched):
            raise InvalidClient("Unknown client or wrong secret.")
        return _client(row)

    async def authenticate_assertion(
        self, assertion: object, audiences: list[str], redis: aioredis.Redis
    ) -> Client:
        """``private_key_jwt``: a client signs a one-time assertion with its key."""
        try:
            if not isinstance(assertion, str):
                raise AssertionRefused("missing")
            client_id = unverified_client_id(assertion)
            row = await self.pool.fetchrow(
                "SELECT * FROM oauth_clients WHERE client_id = $1", client_id
            )
            if row is None or row["disabled_at"] is not None:
                raise AssertionRefused("unknown client")
            keys = [row["public_jwk"]] if row["public_jwk"] is not None else []
            until = row["previous_jwk_valid_until"]
            if row["previous_public_jwk"] is not None and until and until > datetime.now(UTC):
                keys.append(row["previous_public_jwk"])  # within the overlap
            if not keys:
                raise AssertionRefused("no registered key")
            for i, raw in enumerate(keys):
                jwk = raw if isinstance(raw, dict) else json.loads(raw)
                try:
                    jti = verify(assertion, jwk, client_id, audiences)
                    break
                except AssertionRefused:
                    if i == len(keys) - 1:
                        raise  # the last key to try: its reason stands
        except AssertionRefused as exc:
            log.info("client assertion refused", extra={"reason": str(exc)})
            raise InvalidClient("The client assertion was not accepted.") from None
        # One use per jti (RFC 7523 section 3, item 7), kept as long as it could be valid.
        fresh = await redis.set(
            f"oauth:jti:{client_id}:{token_hash(jti).hex()}", 1, nx=True, ex=MAX_LIFETIME + 10
        )
        if not fresh:
            raise InvalidClient("This client assertion was already used.")
        return _client(row)

    async def rotate_secret(self, client_id: str, overlap: timedelta = timedelta(days=1)) -> str:
        """A new secret; the old one keeps working for ``overlap`` so servers can roll over.

        Whatever was current before (a secret, or a registered key for a client switching
        to a secret) works for the overlap; anything older stops now."""
        secret = "cs_" + secrets.token_urlsafe(32)
        status = await self.pool.execute(
            """UPDATE oauth_clients SET previous_secret_hash = secret_hash,
                   previous_valid_until = now() + $3::interval, secret_hash = $2,
                   previous_public_jwk = public_jwk,
                   previous_jwk_valid_until = now() + $3::interval,
                   public_jwk = NULL
               WHERE client_id = $1 AND client_type = 'confidential'""",
            client_id,
            token_hash(secret),
            overlap,
        )
        if not status.endswith(" 1"):
            raise NotFound("No such confidential client.")
        return secret

    async def rotate_key(
        self, client_id: str, public_jwk: object, overlap: timedelta = timedelta(days=1)
    ) -> dict[str, str]:
        """Register a new public key for ``private_key_jwt``; the previous key (or secret,
        for a client switching from a secret) keeps working for ``overlap``; anything older
        stops now."""
        jwk = check_public_jwk(public_jwk)
        status = await self.pool.execute(
            """UPDATE oauth_clients SET
                   previous_public_jwk = public_jwk,
                   previous_jwk_valid_until = now() + $3::interval,
                   public_jwk = $2::jsonb,
                   previous_secret_hash = secret_hash,
                   previous_valid_until = now() + $3::interval,
                   secret_hash = NULL
               WHERE client_id = $1 AND client_type = 'confidential'""",
            client_id,
            json.dumps(jwk),
            overlap,
        )
        if not status.endswith(" 1"):
            raise NotFound("No such confidential client.")
        return jwk

    async def update(
        self,
        client_id: str,
        *,
        redirect_uris: tuple[str, ...] | None = None,
        allowed_scopes: tuple[str, ...] | None = None,
        disabled: bool | None = None,
    ) -> Client:
        row = await self.pool.fetchrow(
            """UPDATE oauth_clients SET
                   redirect_uris = COALESCE($2, redirect_uris),
                   allowed_scopes = COALESCE($3, allowed_scopes),
                   disabled_at = CASE WHEN $4::bool IS NULL THEN disabled_at
                                      WHEN $4 THEN COALESCE(disabled_at, now()) ELSE NULL END
               WHERE client_id = $1 RETURNING *""",
            client_id,
            list(redirect_uris) if redirect_uris is not None else None,
            list(allowed_scopes) if allowed_scopes is not None else None,
            disabled,
        )
        if row is None:
            raise NotFound("No such client.")
        return _client(row)

    def issue_client_token(self, client: Client, scope: list[str] | None = None) -> str:
        """A client-credentials access token (RFC 6749 section 4.4)."""
        requested = scope if scope is not None else list(client.allowed_scopes)
        not_allowed = [s for s in requested if s not in client.allowed_scopes]
        if not_allowed:
            raise InvalidScope(f"Scope not allowed for this client: {' '.join(not_allowed)}.")
        return self.tokens.issue_access(
            sub=client.client_id,
            sid=None,
            acr=0,
            roles=[],
            scope=requested,
            client_id=client.client_id,
            unit_id=client.unit_id,
            kind="client",
        )


class InvalidScope(DomainError):
    code = "invalid-scope"
    kind = "invalid"
    title = "The requested scope is not allowed"
