"""Loading, creating and rotating the platform signing keys (the key ring).

A rotated-in key is published ``ACTIVATION_DELAY`` before it signs, longer
than a worker's reload interval, so no worker ever meets a token signed by a
key it has not loaded yet. Retired keys stay published for ``PUBLISH_AFTER``
(longer than any token the ring signs lives).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg

from identity import keys
from identity.keys import KeyRing
from identity.repository import IdentityRepository

RELOAD_INTERVAL = 20.0
ACTIVATION_DELAY = timedelta(seconds=45)
PUBLISH_AFTER = timedelta(days=1)
_LOCK = 0x5A5A_0002


class KeyRingStore:
    def __init__(self, pool: asyncpg.Pool, repo: IdentityRepository) -> None:
        self.pool = pool
        self.repo = repo

    async def load(self) -> KeyRing:
        async with self.pool.acquire() as conn:
            all_keys = await self.repo.signing_keys(conn)
        # Keys not yet active are published (verifiable) but do not sign yet.
        return KeyRing(all_keys, datetime.now(UTC))

    async def ensure(self, alg: str = "ES256") -> None:
        """Create the first signing key if there is none (idempotent across workers)."""
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK)
            if await conn.fetchval("SELECT count(*) FROM signing_keys WHERE retired_at IS NULL"):
                return
            key = keys.generate(alg)
            kid = keys.kid_for(key.public_key())
            await self.repo.add_signing_key(
                conn, kid, alg, keys.private_pem(key), datetime.now(UTC) - timedelta(seconds=1)
            )

    async def rotate(self, alg: str = "ES256", *, immediate: bool = False) -> str:
        key = keys.generate(alg)
        kid = keys.kid_for(key.public_key())
        now = datetime.now(UTC)
        activates = now if immediate else now + ACTIVATION_DELAY
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK)
            await self.repo.add_signing_key(conn, kid, alg, keys.private_pem(key), activates)
            await self.repo.retire_signing_keys(conn, kid, activates, activates + PUBLISH_AFTER)
        return kid
