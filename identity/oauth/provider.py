"""The provider's facade, wired once in the composition root as ``svc.oidc``.

Other contexts call ``resolve_pairwise(sector, sub)`` to find the citizen
behind a mini-app's ``sub`` and ``pairwise_sub(account_id, sector)`` for the
one derivation (``identity.pairwise``).
"""

from __future__ import annotations

import asyncpg
import redis.asyncio as aioredis

from identity.clients import ClientRegistry
from identity.consents import Consent, Consents
from identity.crypto import Vault
from identity.oauth.authorize import Authorizer
from identity.oauth.grants import TokenGrants
from identity.oauth.issuance import TokenIssuer
from identity.oauth.repository import OAuthRepository
from identity.oauth.store import ProviderStore
from identity.oauth.userinfo import UserInfo
from identity.pairwise import pairwise_sub, resolve_pairwise
from identity.repository import IdentityRepository
from identity.tokens import TokenService


class OidcProvider:
    def __init__(
        self,
        pool: asyncpg.Pool,
        redis: aioredis.Redis,
        vault: Vault,
        tokens: TokenService,
        clients: ClientRegistry,
        consents: Consents,
        identity_repo: IdentityRepository,
        *,
        refresh_ttl: int,
    ) -> None:
        self.pool = pool
        self.vault = vault
        self.consents = consents
        self.repo = OAuthRepository(vault)
        self.store = ProviderStore(redis)
        self.issuer = TokenIssuer(self.repo, vault, tokens, refresh_ttl=refresh_ttl)
        self.authorize = Authorizer(
            pool, self.repo, self.store, clients, consents, issuer=tokens.issuer
        )
        self.grants = TokenGrants(pool, self.repo, identity_repo, self.store, self.issuer, tokens)
        self.userinfo = UserInfo(pool, self.repo, self.store, tokens)

    def pairwise_sub(self, account_id: str, sector: str) -> str:
        return pairwise_sub(self.vault, account_id, sector)

    async def resolve_pairwise(self, sector: str, sub: str) -> str | None:
        """The account behind a pairwise ``sub`` issued for ``sector`` (a unit id)."""
        return await resolve_pairwise(self.pool, sector, sub)

    async def list_consents(self, account_id: str) -> list[Consent]:
        return await self.consents.list(account_id)

    async def revoke_consent(self, account_id: str, client_id: str, ip: str) -> None:
        """Withdraw consent and end every authorisation of that client for the citizen."""
        await self.consents.revoke(account_id, client_id, ip=ip)
        async with self.pool.acquire() as conn, conn.transaction():
            await self.repo.revoke_grants_for(conn, account_id, client_id, "consent-revoked")
