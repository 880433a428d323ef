"""The platform key ring: ES256 (default) or Ed25519 signing keys with a ``kid``.

Private keys are stored encrypted in PostgreSQL so every worker signs with the
same key; the ring is held in memory so verification never touches the
database. Rotation adds a key that signs from then on; retired keys stay
published in the JWKS until every token they signed has expired.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
PublicKey = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey

ALLOWED_ALGS = ("ES256", "EdDSA")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def kid_for(public_key: PublicKey) -> str:
    """First 8 bytes of SHA-256 over the SubjectPublicKeyInfo DER, base64url."""
    spki = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return b64url(hashlib.sha256(spki).digest()[:8])


def public_jwk(public_key: PublicKey, kid: str) -> dict[str, str]:
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        nums = public_key.public_numbers()
        return {
            "kty": "EC",
            "crv": "P-256",
            "x": b64url(nums.x.to_bytes(32, "big")),
            "y": b64url(nums.y.to_bytes(32, "big")),
            "kid": kid,
            "alg": "ES256",
            "use": "sig",
        }
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return {
        "kty": "OKP",
        "crv": "Ed25519",
        "x": b64url(raw),
        "kid": kid,
        "alg": "EdDSA",
        "use": "sig",
    }


def generate(alg: str = "ES256") -> PrivateKey:
    if alg == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    if alg == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    raise ValueError(f"unsupported algorithm {alg}")


def private_pem(key: PrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def load_private_pem(pem: str) -> PrivateKey:
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey):
        raise ValueError("unsupported key type")
    return key


@dataclass(frozen=True)
class SigningKey:
    kid: str
    alg: str
    private_key: PrivateKey | None  # None: published only (retired)
    created_at: datetime
    retired_at: datetime | None
    publish_until: datetime | None

    @property
    def public_key(self) -> PublicKey:
        assert self.private_key is not None
        return self.private_key.public_key()


class KeyRing:
    """In-memory view of the signing keys; replaced wholesale on reload."""

    def __init__(self, keys: list[SigningKey], now: datetime | None = None) -> None:
        now = now or datetime.now(UTC)
        self._keys = {k.kid: k for k in keys}
        # ``created_at`` is when a key starts signing; a retired key stops at ``retired_at``.
        active = [
            k
            for k in keys
            if k.private_key is not None
            and k.created_at <= now
            and (k.retired_at is None or k.retired_at > now)
        ]
        self._active = max(active, key=lambda k: k.created_at) if active else None
        self._public = {kid: k.public_key for kid, k in self._keys.items() if k.private_key}

    @property
    def active(self) -> SigningKey:
        if self._active is None:
            raise LookupError("the key ring has no active signing key")
        return self._active

    def kids(self) -> frozenset[str]:
        return frozenset(k for k, key in self._keys.items() if key.private_key is not None)

    def public_key(self, kid: str) -> tuple[PublicKey, str] | None:
        key = self._keys.get(kid)
        if key is None or key.private_key is None:
            return None
        return self._public[kid], key.alg

    def jwks(self, now: datetime) -> dict[str, Any]:
        keys = [
            public_jwk(k.public_key, k.kid)
            for k in sorted(self._keys.values(), key=lambda k: k.created_at, reverse=True)
            if k.private_key is not None and (k.publish_until is None or k.publish_until > now)
        ]
        return {"keys": keys}
