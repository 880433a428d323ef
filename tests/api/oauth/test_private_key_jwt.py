"""Client authentication with a signed assertion (private_key_jwt, RFC 7523)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from identity.errors import ValidationError
from tests.support import Api

pytestmark = pytest.mark.asyncio

TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def _public_jwk(key: Any) -> dict[str, Any]:
    algo = jwt.algorithms.ECAlgorithm if isinstance(key, ec.EllipticCurvePrivateKey) else None
    if algo is None:
        return json.loads(jwt.algorithms.OKPAlgorithm.to_jwk(key.public_key()))
    return json.loads(algo.to_jwk(key.public_key()))


def _assertion(key: Any, client_id: str, aud: str, alg: str = "ES256", **over: Any) -> str:
    now = int(time.time())
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": aud,
        "iat": now,
        "exp": now + 60,
        "jti": secrets.token_urlsafe(16),
        **over,
    }
    return jwt.encode(claims, key, algorithm=alg)


def _hs256(secret: bytes, claims: dict[str, Any]) -> str:
    """HS256 keyed with the public key (PyJWT refuses to make one)."""

    def b64(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps({**claims, "jti": "x" * 16}).encode())
    mac = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(mac)}"


async def _token(api: Api, assertion: str, **extra: str) -> Any:
    return await api.post(
        "/oauth2/token",
        data={
            "grant_type": "client_credentials",
            "client_assertion_type": TYPE,
            "client_assertion": assertion,
            **extra,
        },
    )


async def test_a_client_with_a_key_gets_tokens_by_assertion(api: Api) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    client, secret = await api.services.clients.create(
        unit_id=await api.unit(), name="Key server", public_jwk=_public_jwk(key)
    )
    assert secret is None
    aud = api.base_url + "/oauth2/token"
    assertion = _assertion(key, client.client_id, aud)
    resp = await _token(api, assertion)
    assert resp.status_code == 200, resp.text
    principal = api.services.tokens.verify_access(resp.json()["access_token"])
    assert principal.kind == "client" and principal.client_id == client.client_id
    # The same assertion twice: refused (one use per jti).
    resp = await _token(api, assertion)
    assert resp.status_code == 401 and resp.json()["error"] == "invalid_client"
    meta = (await api.get("/.well-known/openid-configuration")).json()
    assert "private_key_jwt" in meta["token_endpoint_auth_methods_supported"]


async def test_bad_assertions_are_invalid_client(api: Api) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    other = ec.generate_private_key(ec.SECP256R1())
    client, _ = await api.services.clients.create(
        unit_id=await api.unit(), name="Key server", public_jwk=_public_jwk(key)
    )
    cid, aud = client.client_id, api.base_url + "/oauth2/token"
    pub_pem = key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    bad = [
        _assertion(other, cid, aud),  # signed by another key
        _assertion(key, cid, "https://elsewhere.example/token"),  # wrong audience
        _assertion(key, cid, aud, exp=int(time.time()) - 60),  # expired
        _assertion(key, cid, aud, exp=int(time.time()) + 3600),  # lives too long
        _assertion(key, cid, aud, sub="cli_someone_else"),  # sub is not the client
        _assertion(key, cid, aud, jti=None),  # no jti
        _hs256(pub_pem, {"iss": cid, "sub": cid, "aud": aud, "exp": int(time.time()) + 60}),
        "not-a-jwt",
    ]
    for assertion in bad:
        resp = await _token(api, assertion)
        assert resp.status_code == 401, assertion
        assert resp.json()["error"] == "invalid_client"
    # A secret client cannot use an assertion, nor may a request mix two methods.
    secret_client, secret = await api.services.clients.create(unit_id=await api.unit(), name="s")
    resp = await _token(api, _assertion(key, secret_client.client_id, aud))
    assert resp.status_code == 401
    resp = await _token(api, _assertion(key, cid, aud), client_secret="x")
    assert resp.status_code == 401
    resp = await _token(api, _assertion(key, cid, aud), client_id="cli_other")
    assert resp.status_code == 401


async def test_ed25519_keys_and_key_registration_rules(api: Api) -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    client, _ = await api.services.clients.create(
        unit_id=await api.unit(), name="Ed server", public_jwk=_public_jwk(key)
    )
    resp = await _token(api, _assertion(key, client.client_id, api.base_url, alg="EdDSA"))
    assert resp.status_code == 200, resp.text
    private = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(ec.generate_private_key(ec.SECP256R1())))
    for jwk in (private, {"kty": "RSA", "n": "x", "e": "AQAB"}, "not json", {"kty": "EC"}):
        with pytest.raises(ValidationError):
            await api.services.clients.create(unit_id=await api.unit(), name="bad", public_jwk=jwk)


async def test_clients_create_with_a_public_jwk(api: Api, tmp_path: Any) -> None:
    from tests.api.oauth.test_cli_and_demo import _cli

    key = ec.generate_private_key(ec.SECP256R1())
    path = tmp_path / "client.jwk"
    path.write_text(json.dumps(_public_jwk(key)))
    out = _cli(
        api.services.settings, "--unit", await api.unit(), "--name", "K", "--public-jwk", str(path)
    )
    assert out.returncode == 0, out.stderr
    made = json.loads(out.stdout)
    assert made["client_secret"] is None
    resp = await _token(api, _assertion(key, made["client_id"], api.base_url + "/oauth2/token"))
    assert resp.status_code == 200, resp.text
    missing = _cli(
        api.services.settings, "--unit", "x", "--name", "K", "--public-jwk", "/nonexistent"
    )
    assert missing.returncode == 1 and "cannot read" in missing.stderr
