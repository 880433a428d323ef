"""Issuing units' own ES256 signing keys.

Each unit gets a P-256 key at its first issuance (``kid`` per
``ecert/presentation/keys.py``: first 8 bytes of SHA-256 over the SPKI DER,
base64url). The private key is stored encrypted with the vault. Rotation
retires the current key and creates a new one; every key, retired or not,
stays in the published JWKS so certificates signed earlier keep verifying.
"""

from __future__ import annotations

from typing import Any

import asyncpg
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ecert.presentation.keys import kid_for, public_jwk
from ecert.repository import EcertRepository, IssuerKeyRow
from identity.crypto import Vault
from identity.errors import NotFound


class IssuerKeys:
    def __init__(self, pool: asyncpg.Pool, repo: EcertRepository, vault: Vault) -> None:
        self.pool = pool
        self.repo = repo
        self.vault = vault
        # kid -> key; keys never change once written, so caching them is safe.
        self._private: dict[str, ec.EllipticCurvePrivateKey] = {}

    def _load(self, row: IssuerKeyRow) -> ec.EllipticCurvePrivateKey:
        key = self._private.get(row.kid)
        if key is None:
            pem = self.vault.decrypt(row.private_enc, context="ecert-issuer-key")
            loaded = serialization.load_pem_private_key(pem.encode(), password=None)
            assert isinstance(loaded, ec.EllipticCurvePrivateKey)
            key = self._private[row.kid] = loaded
        return key

    async def _create(self, conn: asyncpg.Connection, unit_id: str) -> IssuerKeyRow:
        key = ec.generate_private_key(ec.SECP256R1())
        kid = kid_for(key.public_key())
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        await self.repo.insert_key(
            conn, kid, unit_id, self.vault.encrypt(pem, context="ecert-issuer-key")
        )
        self._private[kid] = key
        row = await self.repo.key(conn, kid)
        assert row is not None
        return row

    async def signing_key(
        self, conn: asyncpg.Connection, unit_id: str
    ) -> tuple[ec.EllipticCurvePrivateKey, str]:
        """The unit's active key, created on first use (inside the caller's transaction)."""
        row = await self.repo.active_key(conn, unit_id)
        if row is None:
            await self.repo.lock_unit_keys(conn, unit_id)
            row = await self.repo.active_key(conn, unit_id) or await self._create(conn, unit_id)
        return self._load(row), row.kid

    async def rotate(self, unit_id: str) -> str:
        """Retire the unit's key and make a new one; returns the new kid."""
        async with self.pool.acquire() as conn, conn.transaction():
            if await self.repo.unit_code(conn, unit_id) is None:
                raise NotFound("No such unit.")
            await self.repo.lock_unit_keys(conn, unit_id)
            await self.repo.retire_keys(conn, unit_id)
            return (await self._create(conn, unit_id)).kid

    async def public_key(
        self, conn: asyncpg.Connection, kid: str
    ) -> ec.EllipticCurvePublicKey | None:
        row = await self.repo.key(conn, kid)
        return None if row is None else self._load(row).public_key()

    async def jwks(self) -> dict[str, Any]:
        """Every issuer key ever used, with the unit it belongs to (``unit_id``)."""
        async with self.pool.acquire() as conn:
            rows = await self.repo.keys(conn)
        keys = []
        for row in rows:
            jwk: dict[str, Any] = public_jwk(self._load(row).public_key(), row.kid)
            jwk["unit_id"] = row.unit_id
            if row.retired_at is not None:
                jwk["retired_at"] = row.retired_at.isoformat()
            keys.append(jwk)
        return {"keys": keys}
