"""OpenID Connect UserInfo (OIDC Core 5.3): the claims a mini-app's access token
may read, by consented scope. The token must be one this provider issued to a
client (``aud`` = client id), not on the revocation deny list, and its grant
still active, so a withdrawn consent or a replayed code takes effect at once.
"""

from __future__ import annotations

from typing import Any

import asyncpg
import jwt

from identity.errors import InvalidToken
from identity.oauth.errors import OAuthError
from identity.oauth.repository import OAuthRepository
from identity.oauth.store import ProviderStore
from identity.tokens import TokenService
from identity.verification.masking import mask_name


def _invalid(detail: str) -> OAuthError:
    return OAuthError("invalid_token", detail, status_kind="unauthorized")


class UserInfo:
    def __init__(
        self, pool: asyncpg.Pool, repo: OAuthRepository, store: ProviderStore, tokens: TokenService
    ) -> None:
        self.pool = pool
        self.repo = repo
        self.store = store
        self.tokens = tokens

    async def verify(self, token: str) -> dict[str, Any]:
        """The claims of a valid, unrevoked mini-app access token."""
        if not token or len(token) > 8192:
            raise _invalid("The access token is missing.")
        try:
            audience = jwt.decode(token, options={"verify_signature": False}).get("client_id")
        except jwt.PyJWTError:
            raise _invalid("The access token is malformed.") from None
        if not isinstance(audience, str):
            raise _invalid("This is not an access token issued to an app.")
        try:
            claims = self.tokens.decode(token, audience=audience, typ="at+jwt")
        except InvalidToken as exc:
            raise _invalid(exc.detail) from None
        if not isinstance(claims.get("gid"), str) or claims.get("aud") != audience:
            raise _invalid("This is not an access token issued to an app.")
        if await self.store.access_token_denied(str(claims.get("jti"))):
            raise _invalid("The access token was revoked.")
        return claims

    async def claims(self, token: str) -> dict[str, Any]:
        at = await self.verify(token)
        granted = set(str(at.get("scope", "")).split())
        if "openid" not in granted:
            raise OAuthError(
                "insufficient_scope", "UserInfo needs the openid scope.", status_kind="forbidden"
            )
        async with self.pool.acquire() as conn:
            grant = await self.repo.grant(conn, at["gid"])
            if grant is None or grant.revoked_at is not None or grant.client_id != at["aud"]:
                raise _invalid("The authorisation behind this token was revoked.")
            info = await self.repo.account_claims(conn, grant.account_id)
        if info is None:
            raise _invalid("The account no longer exists.")
        out: dict[str, Any] = {"sub": at["sub"], "acr": at.get("acr")}
        if "phone" in granted:
            out["phone_number"] = info.phone
            out["phone_number_verified"] = True  # every account signed in by SMS code
        if "profile" in granted and info.name:
            out["name"] = mask_name(info.name)
        if "real_name" in granted:
            if info.name:
                out["real_name"] = info.name
            if info.id_number:
                out["id_number"] = info.id_number
        return out
