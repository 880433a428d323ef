"""Tokens issued for a grant: RFC 9068 access tokens whose ``aud`` is the client,
opaque rotated refresh tokens, and OpenID Connect ID tokens (ES256 via the
platform key ring). ``sub`` is the citizen's pairwise subject for the client's
unit (OIDC Core 8.1); every issued one is recorded so it can be resolved back.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from identity.clients import Client
from identity.crypto import Vault, token_hash
from identity.oauth.domain import Grant, TokenSet
from identity.oauth.repository import OAuthRepository
from identity.pairwise import pairwise_sub, remember_pairwise
from identity.tokens import TokenService

ID_TOKEN_TTL = 600


def at_hash(access_token: str) -> str:
    """OIDC Core 3.1.3.6: left half of SHA-256 of the access token, base64url."""
    digest = hashlib.sha256(access_token.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode()


class TokenIssuer:
    def __init__(
        self, repo: OAuthRepository, vault: Vault, tokens: TokenService, *, refresh_ttl: int
    ) -> None:
        self.repo = repo
        self.vault = vault
        self.tokens = tokens
        self.refresh_ttl = refresh_ttl

    async def subject(self, conn: asyncpg.Connection, account_id: str, client: Client) -> str:
        sub = pairwise_sub(self.vault, account_id, sector=client.unit_id)
        await remember_pairwise(conn, client.unit_id, sub, account_id)
        return sub

    async def issue(
        self,
        conn: asyncpg.Connection,
        grant: Grant,
        client: Client,
        *,
        scopes: tuple[str, ...] | None = None,
        nonce: str | None = None,
    ) -> TokenSet:
        scopes = scopes if scopes is not None else grant.scopes
        sub = await self.subject(conn, grant.account_id, client)
        auth_time = int(grant.auth_time.timestamp())
        access = self.tokens.sign(
            {
                "sub": sub,
                "aud": client.client_id,
                "client_id": client.client_id,
                "scope": " ".join(scopes),
                "acr": f"L{grant.acr}",
                "auth_time": auth_time,
                "gid": grant.id,
            },
            typ="at+jwt",
        )
        refresh = "ort_" + secrets.token_urlsafe(32)
        expires = datetime.now(UTC) + timedelta(seconds=self.refresh_ttl)
        await self.repo.add_refresh_token(
            conn, token_hash(refresh), grant.id, client.client_id, expires
        )
        id_token = None
        if "openid" in scopes:
            claims: dict[str, Any] = {
                "sub": sub,
                "aud": client.client_id,
                "azp": client.client_id,
                "auth_time": auth_time,
                "acr": f"L{grant.acr}",
                "at_hash": at_hash(access),
            }
            if nonce:
                claims["nonce"] = nonce
            id_token = self.tokens.sign(claims, typ="JWT", ttl=ID_TOKEN_TTL)
        return TokenSet(
            access_token=access,
            expires_in=self.tokens.access_ttl,
            refresh_token=refresh,
            scopes=scopes,
            sub=sub,
            id_token=id_token,
        )
