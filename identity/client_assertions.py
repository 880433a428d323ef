"""Client authentication with a signed assertion instead of a secret
(``private_key_jwt``: OpenID Connect Core section 9, RFC 7523, RFC 7521).

A client registered with a public JWK (EC P-256 for ES256, or Ed25519 for
EdDSA; never a private key) authenticates at the token and revocation
endpoints with a short-lived JWT it signs: ``iss`` and ``sub`` are its client
id, ``aud`` the token endpoint (or the issuer), ``exp`` within 5 minutes and a
``jti`` used once. The algorithm comes from the registered key, never from the
token; key material in the header is refused (RFC 8725).
"""

from __future__ import annotations

import json
import time
from typing import Any

import jwt

from identity.errors import ValidationError

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
MAX_LIFETIME = 300
_FORBIDDEN_HEADERS = ("jwk", "jku", "x5u", "x5c", "crit")


class AssertionRefused(Exception):
    """The assertion does not authenticate the client (the reason is for the log)."""


def check_public_jwk(jwk: object) -> dict[str, str]:
    """Validate a client's public key at registration; return the JWK to store."""
    if isinstance(jwk, str):
        try:
            jwk = json.loads(jwk)
        except ValueError:
            raise ValidationError("public_jwk", "The key is not JSON.") from None
    if not isinstance(jwk, dict) or "d" in jwk:
        raise ValidationError("public_jwk", "Give the public key as a JWK, without 'd'.")
    if not (jwk.get("kty") == "EC" and jwk.get("crv") == "P-256") and not (
        jwk.get("kty") == "OKP" and jwk.get("crv") == "Ed25519"
    ):
        raise ValidationError("public_jwk", "Only EC P-256 (ES256) or Ed25519 (EdDSA) keys.")
    keep = ("kty", "crv", "x", "y") if jwk["kty"] == "EC" else ("kty", "crv", "x")
    clean = {k: str(jwk[k]) for k in keep if k in jwk}
    try:
        jwt.PyJWK(clean)
    except jwt.PyJWTError:
        raise ValidationError("public_jwk", "The key is not a valid public key.") from None
    return clean


def unverified_client_id(assertion: str) -> str:
    if not assertion or len(assertion) > 4096:
        raise AssertionRefused("missing or too long")
    try:
        claims = jwt.decode(assertion, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise AssertionRefused("malformed") from None
    iss = claims.get("iss")
    if not isinstance(iss, str) or claims.get("sub") != iss:
        raise AssertionRefused("iss and sub must both be the client id")
    return iss


def verify(assertion: str, jwk: dict[str, Any], client_id: str, audiences: list[str]) -> str:
    """Check the signature and claims; return the ``jti`` (the caller marks it used)."""
    try:
        header = jwt.get_unverified_header(assertion)
    except jwt.PyJWTError:
        raise AssertionRefused("malformed header") from None
    if any(h in header for h in _FORBIDDEN_HEADERS):
        raise AssertionRefused("key material in the header")
    alg = "ES256" if jwk.get("kty") == "EC" else "EdDSA"
    if header.get("alg") != alg:
        raise AssertionRefused("algorithm does not match the registered key")
    try:
        claims = jwt.decode(
            assertion,
            jwt.PyJWK(jwk, algorithm=alg).key,
            algorithms=[alg],
            audience=audiences,
            issuer=client_id,
            options={"require": ["exp", "iss", "sub", "aud", "jti"]},
            leeway=5,
        )
    except jwt.PyJWTError as exc:
        raise AssertionRefused(type(exc).__name__) from None
    if claims.get("sub") != client_id:
        raise AssertionRefused("sub is not the client id")
    if float(claims["exp"]) > time.time() + MAX_LIFETIME:
        raise AssertionRefused("lives too long")
    jti = claims["jti"]
    if not isinstance(jti, str) or not 8 <= len(jti) <= 200:
        raise AssertionRefused("bad jti")
    return jti
