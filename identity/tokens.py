"""Access tokens: JWTs (RFC 9068 profile) signed by the key ring, verified
locally on every request (no database hit) following RFC 8725: an algorithm
allow-list tied to the key, a known ``kid`` only, no key material taken from
the token header, ``iss``/``aud``/``exp`` checked.
"""

from __future__ import annotations

import time
from collections.abc import Container
from dataclasses import dataclass, field
from typing import Any

import jwt

from identity.errors import InsufficientAssurance, InvalidToken
from identity.ids import new_id
from identity.keys import KeyRing

API_AUDIENCE = "superapp-api"
_CACHE_SIZE = 20_000
_FORBIDDEN_HEADERS = ("jwk", "jku", "x5u", "x5c", "crit")
LEVELS = {"L1": 1, "L2": 2, "L3": 3}


@dataclass(frozen=True)
class Principal:
    """Who is calling: a citizen/staff member (``kind == "user"``) or a client."""

    sub: str
    kind: str  # "user" | "client"
    acr: int = 0
    sid: str | None = None
    roles: tuple[str, ...] = ()  # "platform-admin", "issuer:unt_x", ...
    client_id: str | None = None
    unit_id: str | None = None
    scope: tuple[str, ...] = ()
    claims: dict[str, Any] = field(default_factory=dict, compare=False)

    def require_level(self, level: int) -> None:
        if self.acr < level:
            raise InsufficientAssurance(
                f"This needs assurance level L{level}; your session is at L{self.acr}.",
                required_level=f"L{level}",
                current_level=f"L{self.acr}",
            )


class TokenService:
    def __init__(self, ring: KeyRing, *, issuer: str, access_ttl: int = 600) -> None:
        self._cache: dict[str, tuple[Principal, float, str]] = {}
        # Session ids ended before their tokens expire (``identity.revocation``).
        self.revoked: Container[str] = frozenset()
        self.issuer = issuer
        self.access_ttl = access_ttl
        self.ring = ring

    @property
    def ring(self) -> KeyRing:
        return self._ring

    @ring.setter
    def ring(self, ring: KeyRing) -> None:
        # A key that leaves the ring invalidates what it verified.
        self._ring = ring
        self._live_kids = ring.kids()

    def sign(self, claims: dict[str, Any], *, typ: str = "JWT", ttl: int | None = None) -> str:
        key = self.ring.active
        now = int(time.time())
        body = {"iss": self.issuer, "iat": now, "exp": now + (ttl or self.access_ttl), **claims}
        body.setdefault("jti", new_id("jti"))
        return jwt.encode(
            body, key.private_key, algorithm=key.alg, headers={"kid": key.kid, "typ": typ}
        )

    def issue_access(
        self,
        *,
        sub: str,
        sid: str | None,
        acr: int,
        roles: list[str],
        scope: list[str] | None = None,
        client_id: str | None = None,
        unit_id: str | None = None,
        kind: str = "user",
        phone_masked: str | None = None,
    ) -> str:
        claims: dict[str, Any] = {"sub": sub, "aud": API_AUDIENCE, "kind": kind}
        if kind == "user":
            # The masked phone lets /me and the gateway answer from the token alone.
            claims.update(acr=f"L{acr}", sid=sid, roles=roles, phone_masked=phone_masked)
        if scope:
            claims["scope"] = " ".join(scope)
        if client_id:
            claims["client_id"] = client_id
        if unit_id:
            claims["unit"] = unit_id
        return self.sign(claims, typ="at+jwt")

    def decode(self, token: str, *, audience: str, typ: str | None = None) -> dict[str, Any]:
        """Verify any token this platform signed; raise ``InvalidToken``."""
        if not token or len(token) > 8192:
            raise InvalidToken("The token is missing or too long.")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise InvalidToken("The token is not a well-formed JWT.") from None
        if any(h in header for h in _FORBIDDEN_HEADERS):
            raise InvalidToken("The token header carries key material, which is not accepted.")
        kid = header.get("kid")
        found = self.ring.public_key(kid) if isinstance(kid, str) and len(kid) < 64 else None
        if found is None:
            raise InvalidToken("The token was signed by an unknown key.")
        public_key, alg = found
        if header.get("alg") != alg:
            raise InvalidToken("The token's algorithm is not allowed for its key.")
        if typ is not None and header.get("typ") != typ:
            raise InvalidToken("The token has the wrong type.")
        try:
            return jwt.decode(
                token,
                public_key,
                algorithms=[alg],
                audience=audience,
                issuer=self.issuer,
                options={"require": ["exp", "iat", "iss", "sub"]},
                leeway=5,
            )
        except jwt.ExpiredSignatureError:
            raise InvalidToken("The token has expired.") from None
        except jwt.PyJWTError as exc:
            raise InvalidToken(f"The token is invalid: {_reason(exc)}.") from None

    def verify_access(self, token: str) -> Principal:
        """Verify an access token; a token already verified is served from a small
        in-process cache until its ``exp`` (an ECDSA verification costs more than
        the rest of a simple request). Keyed on the whole token, so a changed byte
        is a cache miss and is verified afresh."""
        now = time.time()
        hit = self._cache.get(token)
        if hit is not None:
            principal, exp, kid = hit
            if now < exp and kid in self._live_kids:
                if principal.sid is not None and principal.sid in self.revoked:
                    raise InvalidToken("This session has ended; sign in again.")
                return principal
            self._cache.pop(token, None)
        principal = self._verify_access(token)
        if principal.sid is not None and principal.sid in self.revoked:
            raise InvalidToken("This session has ended; sign in again.")
        if len(self._cache) >= _CACHE_SIZE:
            self._cache.pop(next(iter(self._cache)))  # drop the oldest entry
        kid = str(jwt.get_unverified_header(token)["kid"])
        self._cache[token] = (principal, float(principal.claims["exp"]), kid)
        return principal

    def _verify_access(self, token: str) -> Principal:
        claims = self.decode(token, audience=API_AUDIENCE, typ="at+jwt")
        kind = claims.get("kind", "user")
        scope = tuple(str(claims.get("scope", "")).split()) if claims.get("scope") else ()
        if kind == "client":
            return Principal(
                sub=claims["sub"],
                kind="client",
                client_id=claims.get("client_id"),
                unit_id=claims.get("unit"),
                scope=scope,
                claims=claims,
            )
        return Principal(
            sub=claims["sub"],
            kind="user",
            acr=LEVELS.get(str(claims.get("acr")), 0),
            sid=claims.get("sid"),
            roles=tuple(claims.get("roles") or ()),
            client_id=claims.get("client_id"),
            scope=scope,
            claims=claims,
        )


def _reason(exc: Exception) -> str:
    # The exception text names the failing check without echoing token content.
    name = type(exc).__name__
    return {
        "InvalidAudienceError": "wrong audience",
        "InvalidIssuerError": "wrong issuer",
        "InvalidSignatureError": "bad signature",
        "ImmatureSignatureError": "not yet valid",
        "MissingRequiredClaimError": "a required claim is missing",
        "DecodeError": "malformed",
    }.get(name, "rejected")
