"""Superapp SDK for mini-app developers: one file, depends on ``httpx`` and ``PyJWT[crypto]``.

Every request the platform's gateway forwards to your service carries an
``X-Superapp-Identity`` header: a JWT (RFC 7519) signed by the platform, valid
for 60 s, with

* ``sub``: the citizen's pairwise id, stable across your unit's apps, unrelated
  to the ids other units see;
* ``aud``: your app id; ``iss``: the platform URL; ``acr``: ``L1``..``L3``;
* ``scope`` and the claims the citizen consented to (e.g. ``phone_masked``);
* ``rid``: the platform's request id (quote it in support tickets); ``ver``: the
  version of your app the citizen was routed to (gray release).

Verify it with :meth:`Superapp.verify_identity`: the keys come from the
platform's JWKS (``/.well-known/jwks.json``), cached and refetched when a new
key id appears (key rotation). Never trust any other ``X-Superapp-*`` header:
the gateway strips client-sent ones, but a request that did not come through
the gateway can carry anything.

Server-to-server calls (payments, notifications) use an access token from the
platform's token endpoint with your app's client credentials
(:meth:`Superapp.client_token`, RFC 6749 section 4.4), cached until it expires.

Example (any framework; here a WSGI-style handler)::

    from superapp_sdk import Superapp, InvalidIdentity

    platform = Superapp("https://superapp.example", app_id="app_...",
                        client_id="cli_...", client_secret=os.environ["SUPERAPP_SECRET"])

    def handle(request):
        try:
            who = platform.verify_identity(request.headers.get("X-Superapp-Identity"))
        except InvalidIdentity:
            return 401
        return f"hello {who['sub']} at {who['acr']}"

    token = platform.client_token(["payment"])  # Authorization: Bearer <token>

Async services use ``await platform.averify_identity(...)`` and
``await platform.aclient_token(...)``.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import httpx
import jwt

IDENTITY_HEADER = "X-Superapp-Identity"
IDENTITY_TYP = "superapp-identity+jwt"
ALGORITHMS = ["ES256", "EdDSA"]  # what the platform signs with; never "none" or HS*
JWKS_TTL = 300.0
MIN_REFETCH = 10.0  # an unknown kid refetches the JWKS at most this often
LEEWAY = 5


class InvalidIdentity(Exception):
    """The identity assertion is missing, forged, expired or for another app."""


class TokenError(Exception):
    """The platform's token endpoint refused the client credentials."""


class Superapp:
    def __init__(
        self,
        platform_url: str,
        *,
        app_id: str,
        client_id: str | None = None,
        client_secret: str | None = None,
        timeout: float = 5.0,
    ) -> None:
        self.platform_url = platform_url.rstrip("/")
        self.app_id = app_id
        self.client_id = client_id
        self.client_secret = client_secret
        self.timeout = timeout
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched = 0.0
        self._lock = threading.Lock()
        self._token: tuple[str, float, tuple[str, ...]] | None = None

    # identity assertions ----------------------------------------------------------------

    def _parse_jwks(self, body: bytes) -> None:
        keys = jwt.PyJWKSet.from_dict(json.loads(body)).keys
        self._keys = {k.key_id: k for k in keys if k.key_id}
        self._fetched = time.monotonic()

    def _needs_fetch(self, kid: str) -> bool:
        age = time.monotonic() - self._fetched
        return age > JWKS_TTL or (kid not in self._keys and age > MIN_REFETCH)

    def _header(self, token: str | None) -> str:
        if not token or len(token) > 8192:
            raise InvalidIdentity("no identity assertion")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise InvalidIdentity("malformed identity assertion") from exc
        if header.get("typ") != IDENTITY_TYP or header.get("alg") not in ALGORITHMS:
            raise InvalidIdentity("not a platform identity assertion")
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise InvalidIdentity("the assertion names no key")
        return kid

    def _decode(self, token: str, kid: str) -> dict[str, Any]:
        key = self._keys.get(kid)
        if key is None:
            raise InvalidIdentity("signed by a key the platform does not publish")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key,
                algorithms=ALGORITHMS,
                audience=self.app_id,
                issuer=self.platform_url,
                leeway=LEEWAY,
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
            )
        except jwt.PyJWTError as exc:
            raise InvalidIdentity(f"identity assertion rejected: {type(exc).__name__}") from exc
        return claims

    def verify_identity(self, token: str | None) -> dict[str, Any]:
        """The verified claims of an ``X-Superapp-Identity`` header; raise ``InvalidIdentity``."""
        kid = self._header(token)
        assert token is not None
        with self._lock:
            if self._needs_fetch(kid):
                url = self.platform_url + "/.well-known/jwks.json"
                response = httpx.get(url, timeout=self.timeout)
                response.raise_for_status()
                self._parse_jwks(response.content)
        return self._decode(token, kid)

    async def averify_identity(self, token: str | None) -> dict[str, Any]:
        kid = self._header(token)
        assert token is not None
        if self._needs_fetch(kid):
            async with httpx.AsyncClient(timeout=self.timeout) as client:
                response = await client.get(self.platform_url + "/.well-known/jwks.json")
            response.raise_for_status()
            self._parse_jwks(response.content)
        return self._decode(token, kid)

    # client credentials ------------------------------------------------------------------

    def _token_request(self, scope: list[str] | None) -> dict[str, Any]:
        if not self.client_id or not self.client_secret:
            raise TokenError("client_id and client_secret are needed for the token endpoint")
        data = {"grant_type": "client_credentials"}
        if scope:
            data["scope"] = " ".join(scope)
        return {
            "url": self.platform_url + "/oauth2/token",
            "data": data,
            "auth": (self.client_id, self.client_secret),
        }

    def _cached(self, scope: list[str] | None) -> str | None:
        key = tuple(sorted(scope or ()))
        if self._token and self._token[2] == key and self._token[1] > time.monotonic():
            return self._token[0]
        return None

    def _store(self, response: httpx.Response, scope: list[str] | None) -> str:
        if response.status_code != 200:
            try:
                error = response.json().get("error", response.status_code)
            except ValueError:
                error = response.status_code
            raise TokenError(f"token endpoint refused: {error}")
        body = response.json()
        # Renew 30 s early so a token never expires in flight.
        expires = time.monotonic() + max(0, int(body.get("expires_in", 60)) - 30)
        self._token = (body["access_token"], expires, tuple(sorted(scope or ())))
        return str(body["access_token"])

    def client_token(self, scope: list[str] | None = None) -> str:
        """An access token for server-to-server calls, cached until shortly before expiry."""
        cached = self._cached(scope)
        if cached:
            return cached
        response = httpx.post(**self._token_request(scope), timeout=self.timeout)
        return self._store(response, scope)

    async def aclient_token(self, scope: list[str] | None = None) -> str:
        cached = self._cached(scope)
        if cached:
            return cached
        async with httpx.AsyncClient(timeout=self.timeout) as client:
            response = await client.post(**self._token_request(scope))
        return self._store(response, scope)
