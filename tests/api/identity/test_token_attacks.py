"""Forged and malformed access tokens are refused with ``invalid-token`` (RFC 8725)."""

from __future__ import annotations

import base64
import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from identity.keys import public_jwk
from tests.support import Api

pytestmark = pytest.mark.asyncio


def _b64(obj: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


async def _claims(api: Api, phone: str) -> tuple[str, dict]:
    token = (await api.sign_in(phone))["access_token"]
    return token, jwt.decode(token, options={"verify_signature": False})


async def _refused(api: Api, token: str) -> None:
    resp = await api.get("/api/v1/identity/me", token=token)
    assert resp.status_code == 401, resp.text
    assert resp.json()["code"] == "invalid-token"


async def test_alg_none(api: Api, phone: str) -> None:
    _, claims = await _claims(api, phone)
    kid = api.services.tokens.ring.active.kid
    token = _b64({"alg": "none", "typ": "at+jwt", "kid": kid}) + "." + _b64(claims) + "."
    await _refused(api, token)


async def test_hs256_signed_with_the_public_key(api: Api, phone: str) -> None:
    _, claims = await _claims(api, phone)
    ring = api.services.tokens.ring
    pem = ring.active.public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = {"alg": "HS256", "typ": "at+jwt", "kid": ring.active.kid}
    signing_input = _b64(header) + "." + _b64(claims)
    import hashlib
    import hmac

    sig = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()
    token = signing_input + "." + base64.urlsafe_b64encode(sig).rstrip(b"=").decode()
    await _refused(api, token)


async def test_unknown_and_injected_kid(api: Api, phone: str) -> None:
    _, claims = await _claims(api, phone)
    attacker = ec.generate_private_key(ec.SECP256R1())
    for kid in ("unknown", "../../etc/passwd", "x' OR '1'='1"):
        token = jwt.encode(
            claims, attacker, algorithm="ES256", headers={"kid": kid, "typ": "at+jwt"}
        )
        await _refused(api, token)


async def test_embedded_jwk(api: Api, phone: str) -> None:
    _, claims = await _claims(api, phone)
    attacker = ec.generate_private_key(ec.SECP256R1())
    headers = {
        "kid": api.services.tokens.ring.active.kid,
        "typ": "at+jwt",
        "jwk": public_jwk(attacker.public_key(), "evil"),
    }
    await _refused(api, jwt.encode(claims, attacker, algorithm="ES256", headers=headers))


async def test_right_kid_wrong_key(api: Api, phone: str) -> None:
    _, claims = await _claims(api, phone)
    attacker = ec.generate_private_key(ec.SECP256R1())
    headers = {"kid": api.services.tokens.ring.active.kid, "typ": "at+jwt"}
    await _refused(api, jwt.encode(claims, attacker, algorithm="ES256", headers=headers))


@pytest.mark.parametrize(
    "change",
    [
        {"iss": "https://evil.example"},
        {"aud": "some-other-api"},
        {"exp": int(time.time()) - 3600},
        {"iat": int(time.time()) + 3600, "nbf": int(time.time()) + 3600},
    ],
)
async def test_wrong_iss_aud_or_expired(api: Api, phone: str, change: dict) -> None:
    _, claims = await _claims(api, phone)
    # Signed with the real key: only the claim checks stand in the way.
    token = api.services.tokens.sign({**claims, **change}, typ="at+jwt")
    await _refused(api, token)


async def test_tampered_payload(api: Api, phone: str) -> None:
    token, claims = await _claims(api, phone)
    header, _, sig = token.split(".")
    forged = header + "." + _b64({**claims, "roles": ["platform-admin"]}) + "." + sig
    await _refused(api, forged)


async def test_garbage(api: Api) -> None:
    for token in ("x", "a.b.c", "....", "eyJ" * 3000):
        await _refused(api, token)
