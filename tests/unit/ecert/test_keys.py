"""Issuer keys: kid derivation, JWKs, and the signed credential (compact JWS)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import datetime, timedelta
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ecert.errors import CredentialInvalid
from ecert.presentation import keys

CLAIMS = {"iss": "unt_szpsb", "sub": "crt_01JD3X8Q6T2M8V5N4K7P9R0S1W", "type": "eid"}


def test_kid_is_the_first_8_bytes_of_the_spki_sha256(issuer: Any) -> None:
    spki = issuer.public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    expected = hashlib.sha256(spki).digest()[:8]
    assert keys.kid_bytes_for(issuer.public_key) == expected
    assert keys.kid_for(issuer.public_key) == base64.urlsafe_b64encode(expected).decode().rstrip(
        "="
    )
    assert len(keys.kid_for(issuer.public_key)) == 11
    assert keys.kid_bytes(keys.kid_text(expected)) == expected


def test_public_jwk_round_trips_and_has_no_private_part(issuer: Any) -> None:
    jwk = issuer.jwk()
    assert jwk["kty"] == "EC" and jwk["crv"] == "P-256" and jwk["alg"] == "ES256"
    assert "d" not in jwk and jwk["kid"] == issuer.kid
    parsed = keys.public_key_from_jwk(jwk)
    assert parsed.public_numbers() == issuer.public_key.public_numbers()
    # pyjwt reads our JWK too: it is standard RFC 7518 form.
    assert jwt.PyJWK(jwk).key.public_numbers() == issuer.public_key.public_numbers()


@pytest.mark.parametrize(
    "change",
    [
        {"crv": "P-384"},
        {"kty": "OKP"},
        {"alg": "ES384"},
        {"x": "AAAA"},
        {"y": "not base64!"},
        {"d": "secret"},
    ],
)
def test_unusable_jwks_are_refused(issuer: Any, change: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        keys.public_key_from_jwk(issuer.jwk() | change)


def test_point_off_the_curve_is_refused(issuer: Any) -> None:
    jwk = issuer.jwk()
    y = keys.b64url_decode(jwk["y"])
    jwk["y"] = keys.b64url(y[:-1] + bytes([y[-1] ^ 1]))
    with pytest.raises(ValueError):
        keys.public_key_from_jwk(jwk)


def test_jwks_lookup_by_cose_kid(issuer: Any, other_issuer: Any) -> None:
    jwks = {"keys": [{"kty": "oct", "kid": "x"}, other_issuer.jwk(), issuer.jwk()]}
    lookup = keys.jwks_key_lookup(jwks)
    found = lookup(issuer.kid_bytes)
    assert found is not None and found.public_numbers() == issuer.public_key.public_numbers()
    assert lookup(b"\x00" * 8) is None
    assert keys.jwks_key_lookup({"keys": "nonsense"})(issuer.kid_bytes) is None


def test_credential_round_trip(issuer: Any, now: datetime) -> None:
    token = keys.sign_credential(issuer.private_key, issuer.kid, CLAIMS)
    header = jwt.get_unverified_header(token)
    assert header == {"alg": "ES256", "kid": issuer.kid, "typ": "ecert+jwt"}
    assert keys.verify_credential(token, {"keys": [issuer.jwk()]}, now=now) == CLAIMS


def test_credential_from_another_key_is_refused(issuer: Any, other_issuer: Any) -> None:
    forged = keys.sign_credential(other_issuer.private_key, issuer.kid, CLAIMS)
    with pytest.raises(CredentialInvalid):
        keys.verify_credential(forged, {"keys": [issuer.jwk()]})
    unknown = keys.sign_credential(other_issuer.private_key, other_issuer.kid, CLAIMS)
    with pytest.raises(CredentialInvalid):
        keys.verify_credential(unknown, {"keys": [issuer.jwk()]})


def test_tampered_credential_is_refused(issuer: Any) -> None:
    head, body, sig = keys.sign_credential(issuer.private_key, issuer.kid, CLAIMS).split(".")
    claims = json.loads(keys.b64url_decode(body)) | {"sub": "crt_someone_else"}
    tampered = ".".join([head, keys.b64url(json.dumps(claims).encode()), sig])
    with pytest.raises(CredentialInvalid):
        keys.verify_credential(tampered, {"keys": [issuer.jwk()]})


def _unsigned(header: dict[str, Any], claims: dict[str, Any]) -> str:
    enc = [keys.b64url(json.dumps(x).encode()) for x in (header, claims)]
    return ".".join([*enc, ""])


def test_algorithm_allow_list(issuer: Any) -> None:
    none_token = _unsigned({"alg": "none", "kid": issuer.kid, "typ": "ecert+jwt"}, CLAIMS)
    with pytest.raises(CredentialInvalid):
        keys.verify_credential(none_token, {"keys": [issuer.jwk()]})
    # HS256 keyed with the public JWK text: the classic algorithm-confusion attack.
    # (pyjwt refuses to sign that, so the token is built by hand.)
    secret = json.dumps(issuer.jwk()).encode()
    signing_input = _unsigned({"alg": "HS256", "kid": issuer.kid, "typ": "ecert+jwt"}, CLAIMS)
    mac = hmac.new(secret, signing_input[:-1].encode(), hashlib.sha256).digest()
    hs = signing_input + keys.b64url(mac)
    with pytest.raises(CredentialInvalid):
        keys.verify_credential(hs, {"keys": [issuer.jwk()]})
    p384 = ec.generate_private_key(ec.SECP384R1())
    es384 = jwt.encode(
        CLAIMS, p384, algorithm="ES384", headers={"kid": issuer.kid, "typ": "ecert+jwt"}
    )
    with pytest.raises(CredentialInvalid):
        keys.verify_credential(es384, {"keys": [issuer.jwk()]})


def test_other_token_types_are_refused(issuer: Any) -> None:
    access = jwt.encode(CLAIMS, issuer.private_key, algorithm="ES256", headers={"kid": issuer.kid})
    with pytest.raises(CredentialInvalid):
        keys.verify_credential(access, {"keys": [issuer.jwk()]})


def test_credential_time_claims(issuer: Any, now: datetime) -> None:
    jwks = {"keys": [issuer.jwk()]}
    exp = int((now + timedelta(days=1)).timestamp())
    token = keys.sign_credential(issuer.private_key, issuer.kid, CLAIMS | {"exp": exp})
    assert keys.verify_credential(token, jwks, now=now)["exp"] == exp
    with pytest.raises(CredentialInvalid):
        keys.verify_credential(token, jwks, now=now + timedelta(days=1, seconds=30))
    bad = keys.sign_credential(issuer.private_key, issuer.kid, CLAIMS | {"exp": float("nan")})
    with pytest.raises(CredentialInvalid):
        keys.verify_credential(bad, jwks, now=now)


@pytest.mark.parametrize("token", ["", "a.b.c", "....", "not a jwt", "eyJ.eyJ.x"])
def test_garbage_tokens(issuer: Any, token: str) -> None:
    with pytest.raises(CredentialInvalid):
        keys.verify_credential(token, {"keys": [issuer.jwk()]})
