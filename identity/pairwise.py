"""Pairwise subject identifiers (OpenID Connect Core section 8.1).

A citizen has one ``sub`` across the apps of one unit (the sector, like
WeChat's unionid across one developer's apps) and unrelated ones across units
(like openid), derived with a keyed HMAC so nobody without the master key can
link them or recover the account id.

Every pairwise subject handed out (an ID token, userinfo, the gateway's identity
assertion) is remembered in ``pairwise_subjects``, so a unit's server that names
a citizen by it (certificate-free handling, say) is resolved with one indexed
lookup; a subject never handed out resolves to nobody.
"""

from __future__ import annotations

import base64

import asyncpg

from identity.crypto import Vault


def pairwise_sub(vault: Vault, account_id: str, sector: str) -> str:
    digest = vault.blind_index(f"{sector}\x00{account_id}", context="pairwise")
    return "pw_" + base64.b32encode(digest[:15]).decode().lower()


async def remember_pairwise(
    conn: asyncpg.Connection | asyncpg.Pool, sector: str, sub: str, account_id: str
) -> None:
    await conn.execute(
        """INSERT INTO pairwise_subjects (sector, pairwise_sub, account_id)
           VALUES ($1, $2, $3) ON CONFLICT DO NOTHING""",
        sector,
        sub,
        account_id,
    )


async def resolve_pairwise(
    conn: asyncpg.Connection | asyncpg.Pool, sector: str, sub: str
) -> str | None:
    """The account behind a pairwise ``sub`` handed out for ``sector`` (a unit id)."""
    value: str | None = await conn.fetchval(
        "SELECT account_id FROM pairwise_subjects WHERE sector = $1 AND pairwise_sub = $2",
        sector,
        sub,
    )
    return value
