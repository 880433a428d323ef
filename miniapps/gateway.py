"""The gateway's decision for one request, before any byte goes upstream.

Route lookup (in memory) -> app status -> pairwise subject -> gray version ->
minimum assurance -> consented claims -> per-app and per-citizen rate limit
(one Redis round trip, fail closed) -> circuit breaker. Returns what the HTTP
side needs: where to connect and the claims of the identity assertion.

Per-worker caches keep the request path free of database hits: pairwise
subjects (pure HMAC, kept forever), citizen profiles for cohort selection (60 s)
and consents (10 s; a revoked consent stops adding claims within that time).
The citizen's access token is verified by ``TokenService.verify_access``, whose
cache still checks for an ended session on every request.

:class:`AssertionSigner` builds the identity assertion (a compact JWS) by hand:
the header segment is made once per signing key and the claims that depend on
(citizen, app, version, consent) once per combination, so each request only
adds its time, ``jti`` and request id and signs.
"""

from __future__ import annotations

import base64
import json
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Generic, TypeVar

import asyncpg
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from identity.consents import Consents
from identity.crypto import Vault
from identity.ids import new_id
from identity.pairwise import pairwise_sub, remember_pairwise
from identity.tokens import Principal, TokenService
from miniapps.breaker import BreakerRegistry, CircuitBreaker
from miniapps.errors import (
    MiniAppNotFound,
    MiniAppUnavailable,
    NotInRelease,
    UpstreamAddressRefused,
)
from miniapps.gray import Citizen, choose_version
from miniapps.ratelimit import RateLimiter, app_keys
from miniapps.repository import MiniAppRepository
from miniapps.routes import AppRoute, RouteTable, VersionRoute

K = TypeVar("K")
V = TypeVar("V")

ASSERTION_TYP = "superapp-identity+jwt"
ASSERTION_TTL = 60
PROFILE_TTL = 60.0
CONSENT_TTL = 10.0
# Claims the access token already carries, released only with the consented scope.
_CLAIMS_BY_SCOPE = {"phone": ("phone_masked",)}


class TtlCache(Generic[K, V]):
    """A small LRU with expiry (per worker; no locking needed on one event loop)."""

    def __init__(self, size: int, ttl: float) -> None:
        self.size, self.ttl = size, ttl
        self._data: OrderedDict[K, tuple[float, V]] = OrderedDict()

    def get(self, key: K) -> V | None:
        hit = self._data.get(key)
        if hit is None or hit[0] < time.monotonic():
            return None
        return hit[1]

    def put(self, key: K, value: V) -> None:
        self._data[key] = (time.monotonic() + self.ttl, value)
        self._data.move_to_end(key)
        if len(self._data) > self.size:
            self._data.popitem(last=False)


@dataclass(frozen=True)
class Admission:
    route: AppRoute
    version: VersionRoute
    breaker: CircuitBreaker
    subject: str  # pairwise sub for this app's unit
    claims: dict[str, Any]  # the identity assertion's claims (without iss/iat/exp/jti/rid)
    claims_json: str  # the same as JSON members without braces, for AssertionSigner


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class AssertionSigner:
    """Signs identity assertions: ``{"alg","kid","typ"}`` and the claims plus
    ``iss``, ``iat``, ``exp``, a fresh ``jti`` and the request id ``rid``,
    with the key ring's active key (ES256 or EdDSA), as PyJWT would."""

    _ECDSA = ec.ECDSA(hashes.SHA256())

    def __init__(
        self, tokens: TokenService, *, typ: str = ASSERTION_TYP, ttl: int = ASSERTION_TTL
    ) -> None:
        self.tokens, self.typ, self.ttl = tokens, typ, ttl
        self._header: tuple[object, str] | None = None  # (signing key, header segment)

    def sign(self, claims_json: str, request_id: str) -> str:
        key = self.tokens.ring.active
        if self._header is None or self._header[0] is not key:
            header = {"alg": key.alg, "kid": key.kid, "typ": self.typ}
            self._header = (key, _b64(json.dumps(header, separators=(",", ":")).encode()))
        now = int(time.time())
        payload = (
            f'{{"iss":{json.dumps(self.tokens.issuer)},"iat":{now},"exp":{now + self.ttl},'
            f'"jti":"{new_id("jti")}","rid":{json.dumps(request_id)},{claims_json}}}'
        )
        signing_input = f"{self._header[1]}.{_b64(payload.encode())}"
        private = key.private_key
        if isinstance(private, ec.EllipticCurvePrivateKey):
            r, s = decode_dss_signature(private.sign(signing_input.encode(), self._ECDSA))
            signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        else:  # Ed25519
            assert private is not None
            signature = private.sign(signing_input.encode())  # type: ignore[call-arg]
        return f"{signing_input}.{_b64(signature)}"


class GatewayCore:
    def __init__(
        self,
        routes: RouteTable,
        limiter: RateLimiter,
        vault: Vault,
        consents: Consents,
        pool: asyncpg.Pool,
        repo: MiniAppRepository,
        breakers: BreakerRegistry | None = None,
        *,
        assertions: AssertionSigner,
    ) -> None:
        self.routes = routes
        self.limiter = limiter
        self.vault = vault
        self.consents = consents
        self.pool = pool
        self.repo = repo
        self.breakers = breakers or BreakerRegistry()
        self.assertions = assertions
        self._subs: TtlCache[tuple[str, str], str] = TtlCache(100_000, 1e12)
        self._profiles: TtlCache[str, tuple[str | None, date | None]] = TtlCache(
            100_000, PROFILE_TTL
        )
        self._consents: TtlCache[tuple[str, str], frozenset[str]] = TtlCache(100_000, CONSENT_TTL)
        # Claims by (subject, app, assurance, version, consented scopes, released values).
        self._claims: TtlCache[tuple[Any, ...], tuple[dict[str, Any], str]] = TtlCache(
            100_000, 1e12
        )

    async def pairwise(self, account_id: str, unit_id: str) -> str:
        """The citizen's subject for the unit, remembered (once per worker) before the
        upstream first sees it, so the unit's server can name the citizen back with it."""
        key = (account_id, unit_id)
        sub = self._subs.get(key)
        if sub is None:
            sub = pairwise_sub(self.vault, account_id, sector=unit_id)
            await remember_pairwise(self.pool, unit_id, sub, account_id)
            self._subs.put(key, sub)
        return sub

    async def _profile(self, account_id: str) -> tuple[str | None, date | None]:
        found = self._profiles.get(account_id)
        if found is None:
            async with self.pool.acquire() as conn:
                row = await self.repo.citizen_profile(conn, account_id)
            found = (row["region_code"], row["birth_date"]) if row else (None, None)
            self._profiles.put(account_id, found)
        return found

    async def _consented(self, account_id: str, client_id: str | None) -> frozenset[str]:
        if client_id is None:
            return frozenset()
        key = (account_id, client_id)
        found = self._consents.get(key)
        if found is None:
            consent = await self.consents.get(account_id, client_id)
            found = frozenset(consent.scopes) if consent else frozenset()
            self._consents.put(key, found)
        return found

    async def admit(self, app_id: str, who: Principal) -> Admission:
        await self.routes.ensure_loaded()
        route = self.routes.get(app_id)
        if route is None:
            raise MiniAppNotFound()
        if route.status != "released":
            raise MiniAppUnavailable("This mini-app is suspended.")
        subject = await self.pairwise(who.sub, route.unit_id)
        district = birth = None
        if route.needs_profile:
            district, birth = await self._profile(who.sub)
        citizen = Citizen(subject, district, f"L{who.acr}", birth)
        today = datetime.now(UTC).date()
        version = choose_version(app_id, citizen, route.release, route.previous, today)
        vr = route.versions.get(version) if version else None
        if vr is None:
            raise NotInRelease()
        who.require_level(vr.min_acr)
        if vr.upstream is None:
            raise UpstreamAddressRefused(vr.refused or "The upstream address is refused.")
        consented = await self._consented(who.sub, route.client_id) & vr.scopes
        app_key, sub_key = app_keys(app_id, subject)
        await self.limiter.enforce([(app_key, vr.app_limit), (sub_key, vr.citizen_limit)])
        breaker = self.breakers.get(vr.upstream.origin)
        breaker.acquire()
        released = tuple(
            (name, who.claims.get(name))
            for scope, names in _CLAIMS_BY_SCOPE.items()
            if scope in consented
            for name in names
            if who.claims.get(name) is not None
        )
        key = (subject, app_id, who.acr, vr.version, consented, released)
        found = self._claims.get(key)
        if found is None:
            claims: dict[str, Any] = {
                "sub": subject,
                "aud": app_id,
                "acr": f"L{who.acr}",
                "ver": vr.version,
                "scope": " ".join(sorted(consented | {"openid"})),
                **dict(released),
            }
            found = (claims, json.dumps(claims, separators=(",", ":"))[1:-1])
            self._claims.put(key, found)
        return Admission(route, vr, breaker, subject, found[0], found[1])
