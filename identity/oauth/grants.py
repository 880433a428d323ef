"""The token endpoint's grants (RFC 6749 4.1.3 and 6) and revocation (RFC 7009).

- ``authorization_code``: single use (a Lua script in Redis); a replayed code
  revokes its grant and so every token issued from it; ``redirect_uri`` and
  the PKCE verifier must match what the authorisation request bound.
- ``refresh_token``: opaque, bound to the client, rotated on every use; a
  replayed one revokes the grant (RFC 9700 4.14.2).
- revocation: a refresh token revokes its whole grant; an access token is put
  on a deny list until it expires.
"""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg

from identity.clients import Client
from identity.crypto import token_hash
from identity.errors import InvalidToken
from identity.oauth import pkce, scopes
from identity.oauth.domain import TokenSet
from identity.oauth.errors import OAuthError, invalid_grant
from identity.oauth.issuance import TokenIssuer
from identity.oauth.repository import OAuthRepository
from identity.oauth.store import ProviderStore
from identity.repository import IdentityRepository
from identity.tokens import TokenService


class TokenGrants:
    def __init__(
        self,
        pool: asyncpg.Pool,
        repo: OAuthRepository,
        identity_repo: IdentityRepository,
        store: ProviderStore,
        issuer: TokenIssuer,
        tokens: TokenService,
    ) -> None:
        self.pool = pool
        self.repo = repo
        self.identity_repo = identity_repo
        self.store = store
        self.issuer = issuer
        self.tokens = tokens

    async def authorization_code(self, client: Client, form: dict[str, str], ip: str) -> TokenSet:
        code = form.get("code")
        if not code:
            raise OAuthError("invalid_request", "code is missing.")
        consumed = await self.store.consume_code(code, client.client_id)
        if consumed.status == "used" and consumed.grant_id:
            # Revoke what was issued from the code. A replay racing the first exchange
            # (tokens not issued yet) leaves that exchange alone, so of two concurrent
            # exchanges exactly one succeeds; a later replay revokes its tokens.
            await self.revoke_grant(consumed.grant_id, "code-reused", ip, only_exchanged=True)
            raise invalid_grant("The code was already used; every token issued from it is revoked.")
        if consumed.status != "ok" or consumed.payload is None:
            raise invalid_grant("The code is invalid, expired or was issued to another client.")
        p = consumed.payload
        grant_id = p["grant_id"]
        problem = None
        if p["kind"] == "web":
            challenge = p.get("code_challenge")
            if form.get("redirect_uri") != p["redirect_uri"]:
                problem = "redirect_uri does not match the authorisation request."
            elif challenge and not pkce.verify(form.get("code_verifier"), challenge):
                problem = "PKCE verification failed."
            elif not challenge and form.get("code_verifier"):
                problem = "code_verifier sent, but the authorisation request had no code_challenge."
        elif client.client_type != "confidential":
            problem = "A mini-app login code is exchanged by the app's server."
        if problem:
            await self.revoke_grant(grant_id, "exchange-failed", ip)
            raise invalid_grant(problem)
        async with self.pool.acquire() as conn, conn.transaction():
            grant = await self.repo.mark_exchanged(conn, grant_id)
            if grant is None:
                raise invalid_grant("The authorisation was revoked.")
            return await self.issuer.issue(conn, grant, client, nonce=p.get("nonce"))

    async def refresh_token(self, client: Client, form: dict[str, str], ip: str) -> TokenSet:
        raw = form.get("refresh_token") or ""
        if not raw.startswith("ort_") or len(raw) > 200:
            raise invalid_grant("The refresh token is not valid.")
        requested = scopes.parse(form["scope"]) if form.get("scope") else None
        digest = token_hash(raw)
        async with self.pool.acquire() as conn:
            async with conn.transaction():
                row = await self.repo.consume_refresh_token(conn, digest)
                if row is not None:
                    # Raising here rolls the consumption back: the token stays unused.
                    if row["client_id"] != client.client_id:
                        raise invalid_grant("The refresh token was issued to another client.")
                    if row["expires_at"] <= datetime.now(UTC):
                        raise invalid_grant("The refresh token has expired.")
                    grant = await self.repo.grant(conn, row["grant_id"], lock=True)
                    if grant is None or grant.revoked_at is not None:
                        raise invalid_grant("The authorisation was revoked.")
                    granted = grant.scopes
                    if requested is not None:
                        if not set(requested) <= set(grant.scopes):
                            raise OAuthError(
                                "invalid_scope", "Scope wider than the original grant."
                            )
                        granted = tuple(requested)
                    return await self.issuer.issue(conn, grant, client, scopes=granted)
            row = await self.repo.refresh_token(conn, digest)
        if row is None or row["client_id"] != client.client_id:
            raise invalid_grant("The refresh token is not valid.")
        await self.revoke_grant(row["grant_id"], "refresh-token-reused", ip)
        raise invalid_grant(
            "This refresh token was already used, so the authorisation was revoked."
        )

    async def revoke(self, client: Client, token: str, ip: str) -> None:
        """RFC 7009: unknown tokens and other clients' tokens are ignored (still 200)."""
        if not token or len(token) > 8192:
            return
        if token.startswith("ort_"):
            async with self.pool.acquire() as conn:
                row = await self.repo.refresh_token(conn, token_hash(token))
            if row is not None and row["client_id"] == client.client_id:
                await self.revoke_grant(row["grant_id"], "revoked-by-client", ip)
            return
        try:
            claims = self.tokens.decode(token, audience=client.client_id, typ="at+jwt")
        except InvalidToken:
            return
        if claims.get("client_id") == client.client_id and isinstance(claims.get("jti"), str):
            await self.store.deny_access_token(claims["jti"], int(claims["exp"]))

    async def revoke_grant(
        self, grant_id: str, reason: str, ip: str, *, only_exchanged: bool = False
    ) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            grant = await self.repo.revoke_grant(
                conn, grant_id, reason, only_exchanged=only_exchanged
            )
            if grant is not None:
                await self.identity_repo.record_event(
                    conn,
                    grant.account_id,
                    "oauth-grant-revoked",
                    {"client_id": grant.client_id, "grant": grant_id, "reason": reason},
                    ip,
                )
