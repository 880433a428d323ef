"""Issuer signing keys: key ids, JWKs (RFC 7517/7518) and signed credentials (RFC 7515).

Key id: the first 8 bytes of SHA-256 over the key's SubjectPublicKeyInfo DER.
As text (JWK ``kid``, logs) it is unpadded base64url, 11 characters, the
encoding JOSE uses everywhere else (RFC 7638 thumbprints). In a COSE header
it is the 8 raw bytes, which saves 8 bytes in the QR code over hex text;
``kid_text`` / ``kid_bytes`` convert, and JWKS look-ups go through the text
form so a JWKS may also hold keys whose kid is not base64url.

A credential is a compact JWS, ``alg`` ES256 only, header ``typ``
``ecert+jwt``: explicit typing (RFC 8725 section 3.11) so that a credential
can never be mistaken for an access token or an ID token signed by a key in
the same JWKS. We do not call it ``vc+jwt`` because our claims are not the
W3C Verifiable Credentials data model.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec

from ecert.errors import CredentialInvalid
from identity import keys as identity_keys
from identity.errors import DomainError
from identity.keys import kid_for

KID_BYTES = 8
CREDENTIAL_TYP = "ecert+jwt"
ALGORITHMS = ["ES256"]  # the one allow-list every verifier here uses


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Strict unpadded base64url; raises ValueError."""
    if not isinstance(text, str) or "=" in text or len(text) % 4 == 1:
        raise ValueError("not unpadded base64url")
    raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if b64url(raw) != text:  # reject non-canonical trailing bits
        raise ValueError("non-canonical base64url")
    return raw


def kid_bytes_for(public_key: ec.EllipticCurvePublicKey) -> bytes:
    return kid_bytes(kid_for(public_key))


def kid_bytes(kid: str) -> bytes:
    return b64url_decode(kid)


def kid_text(kid: bytes) -> str:
    return b64url(kid)


def public_jwk(public_key: ec.EllipticCurvePublicKey, kid: str) -> dict[str, str]:
    if not isinstance(public_key.curve, ec.SECP256R1):
        raise TypeError("only P-256 keys are published")
    return identity_keys.public_jwk(public_key, kid)


def public_key_from_jwk(jwk: Mapping[str, Any]) -> ec.EllipticCurvePublicKey:
    """Parse an EC P-256 public JWK; raises ValueError for anything else."""
    if jwk.get("kty") != "EC" or jwk.get("crv") != "P-256" or "d" in jwk:
        raise ValueError("not a public EC P-256 JWK")
    if jwk.get("alg", "ES256") != "ES256":
        raise ValueError("JWK is not for ES256")
    x, y = b64url_decode(jwk.get("x", "")), b64url_decode(jwk.get("y", ""))
    if len(x) != 32 or len(y) != 32:
        raise ValueError("bad coordinate length")
    # public_key() checks that the point is on the curve.
    return ec.EllipticCurvePublicNumbers(
        int.from_bytes(x, "big"), int.from_bytes(y, "big"), ec.SECP256R1()
    ).public_key()


def find_key(jwks: Mapping[str, Any], kid: str) -> ec.EllipticCurvePublicKey | None:
    """The usable P-256 key with this kid in a JWKS, or None. Unusable entries are skipped."""
    keys = jwks.get("keys") if isinstance(jwks, Mapping) else None
    for jwk in keys if isinstance(keys, list) else []:
        if isinstance(jwk, Mapping) and jwk.get("kid") == kid:
            if jwk.get("use", "sig") != "sig":
                continue
            try:
                return public_key_from_jwk(jwk)
            except ValueError:
                continue
    return None


def jwks_key_lookup(
    jwks: Mapping[str, Any],
) -> Callable[[bytes], ec.EllipticCurvePublicKey | None]:
    """A COSE ``kid`` (bytes) -> key function over a JWKS, for ``decode_and_verify``."""

    def lookup(kid: bytes) -> ec.EllipticCurvePublicKey | None:
        return find_key(jwks, kid_text(kid))

    return lookup


def sign_credential(
    private_key: ec.EllipticCurvePrivateKey, kid: str, claims: Mapping[str, Any]
) -> str:
    """Compact JWS (ES256, typ ``ecert+jwt``) over the certificate claims."""
    if not isinstance(private_key.curve, ec.SECP256R1):
        raise TypeError("ES256 needs a P-256 key")
    headers = {"kid": kid, "typ": CREDENTIAL_TYP}
    return jwt.encode(dict(claims), private_key, algorithm="ES256", headers=headers)


def verify_jws(
    token: str,
    jwks: Mapping[str, Any],
    typ: str,
    now: datetime | None,
    leeway: int,
    error: type[DomainError],
) -> dict[str, Any]:
    """Verify a compact JWS against a JWKS with the ES256 allow-list and an expected ``typ``.

    Time claims (``exp``, ``nbf``, ``iat``) are checked against ``now`` when given,
    otherwise against the wall clock, with ``leeway`` seconds of skew.
    """
    try:
        header = jwt.get_unverified_header(token)
        if header.get("typ") != typ:
            raise error(f"the token type must be {typ}")
        if header.get("alg") not in ALGORITHMS:
            raise error("algorithm not allowed")
        kid = header.get("kid")
        key = find_key(jwks, kid) if isinstance(kid, str) else None
        if key is None:
            raise error("no trusted key has this kid")
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=ALGORITHMS,
            options={"verify_exp": False, "verify_nbf": False, "verify_iat": False},
        )
    except jwt.PyJWTError as exc:
        raise error("signature or format invalid") from exc
    _check_times(claims, now or datetime.now(UTC), leeway, error)
    return claims


def _check_times(
    claims: Mapping[str, Any], now: datetime, leeway: int, error: type[DomainError]
) -> None:
    t = now.timestamp()
    for name in ("exp", "nbf", "iat"):
        value = claims.get(name, 0)
        # JSON admits NaN and Infinity; a NaN exp would never compare as expired.
        if type(value) not in (int, float) or not math.isfinite(value):
            raise error(f"{name} must be a finite number")
    if "exp" in claims and t >= claims["exp"] + leeway:
        raise error("the token has expired")
    if "nbf" in claims and claims["nbf"] > t + leeway:
        raise error("the token is not valid yet")
    if "iat" in claims and claims["iat"] > t + leeway:
        raise error("the token was issued in the future")


def verify_credential(
    token: str,
    jwks: Mapping[str, Any],
    *,
    now: datetime | None = None,
    leeway: int = 30,
) -> dict[str, Any]:
    """The verified claims of a credential from ``sign_credential``; else ``CredentialInvalid``."""
    return verify_jws(token, jwks, CREDENTIAL_TYP, now, leeway, CredentialInvalid)
