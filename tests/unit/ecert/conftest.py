"""Shared fixtures for the e-certificate codec tests: issuer keys and a fixed clock."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from ecert.presentation import keys


@dataclass(frozen=True)
class Issuer:
    private_key: ec.EllipticCurvePrivateKey
    kid: str  # JWK text form
    kid_bytes: bytes  # COSE header form

    @property
    def public_key(self) -> ec.EllipticCurvePublicKey:
        return self.private_key.public_key()

    def jwk(self) -> dict[str, Any]:
        return keys.public_jwk(self.public_key, self.kid)

    def lookup(self) -> Callable[[bytes], ec.EllipticCurvePublicKey | None]:
        return lambda kid: self.public_key if kid == self.kid_bytes else None


def make_issuer() -> Issuer:
    key = ec.generate_private_key(ec.SECP256R1())
    return Issuer(key, keys.kid_for(key.public_key()), keys.kid_bytes_for(key.public_key()))


@pytest.fixture(scope="session")
def issuer() -> Issuer:
    return make_issuer()


@pytest.fixture(scope="session")
def other_issuer() -> Issuer:
    return make_issuer()


@pytest.fixture(scope="session")
def now() -> datetime:
    return datetime(2026, 11, 22, 2, 0, 0, tzinfo=UTC)
