"""Demo upstream for the mini-app gateway: an "echo" mini-app service.

Answers any method and path with JSON describing the request it received: method,
path, query, headers, body size and digest, and the identity assertion from the
``X-Superapp-Identity`` header (a JWS, RFC 7515), decoded for display and
verified against the platform's JWKS (RFC 7517) when ``jwks_url`` is given.
Two paths help gateway tests: ``/slow?ms=N`` answers after N ms (timeouts) and
``/status/{code}`` answers with that status (5xx for the circuit breaker).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import time
from typing import Any

import jwt
import tornado.web
from tornado.httpclient import AsyncHTTPClient, HTTPClientError
from tornado.log import access_log

from server import loops

IDENTITY_HEADER = "X-Superapp-Identity"
ALGORITHMS = ["ES256", "EdDSA"]  # what the platform key ring signs with; never "none"
MAX_SLOW_MS = 60_000
JWKS_TTL = 60.0


class JwksCache:
    """Fetches the platform JWKS, keeps it for a minute, refetches on an unknown ``kid``."""

    def __init__(self, url: str | None) -> None:
        self.url = url
        self._keys: jwt.PyJWKSet | None = None
        self._fetched = 0.0

    async def key(self, kid: str | None) -> jwt.PyJWK:
        if self.url is None:
            raise LookupError("no jwks_url configured")
        stale = time.monotonic() - self._fetched > JWKS_TTL
        if self._keys is None or stale or not self._find(kid):
            response = await AsyncHTTPClient().fetch(self.url, request_timeout=3)
            self._keys = jwt.PyJWKSet.from_dict(json.loads(response.body))
            self._fetched = time.monotonic()
        found = self._find(kid)
        if found is None:
            raise LookupError("no key with this kid in the JWKS")
        return found

    def _find(self, kid: str | None) -> jwt.PyJWK | None:
        if self._keys is None:
            return None
        return next((k for k in self._keys.keys if k.key_id == kid), None)


async def describe_identity(token: str | None, jwks: JwksCache, audience: str | None) -> Any:
    """Decoded header and claims (unverified, for display) plus the verification outcome."""
    if not token:
        return None
    out: dict[str, Any] = {"verified": False}
    try:
        out["header"] = jwt.get_unverified_header(token)
        out["claims"] = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError as exc:
        out["error"] = f"undecodable: {exc}"
        return out
    try:
        key = await jwks.key(out["header"].get("kid"))
        jwt.decode(
            token,
            key=key,
            algorithms=ALGORITHMS,
            audience=audience,
            options={"verify_aud": audience is not None, "require": ["exp", "iat", "sub"]},
            leeway=5,
        )
        out["verified"] = True
    except (jwt.PyJWTError, LookupError, HTTPClientError, OSError, ValueError) as exc:
        out["error"] = f"{type(exc).__name__}: {exc}"
    return out


class _Base(tornado.web.RequestHandler):
    def initialize(self, jwks: JwksCache, audience: str | None) -> None:
        self.jwks = jwks
        self.audience = audience

    def check_xsrf_cookie(self) -> None:  # an API upstream, no cookies
        pass

    async def echo(self, status: int = 200, **extra: Any) -> None:
        req = self.request
        body = {
            "method": req.method,
            "path": req.path,
            "query": {k: [v.decode() for v in vs] for k, vs in req.query_arguments.items()},
            "headers": dict(req.headers.get_all()),
            "body_bytes": len(req.body),
            "body_sha256": hashlib.sha256(req.body).hexdigest(),
            "identity": await describe_identity(
                req.headers.get(IDENTITY_HEADER), self.jwks, self.audience
            ),
            **extra,
        }
        self.set_status(status)
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(json.dumps(body, ensure_ascii=False, sort_keys=True))

    async def get(self, *_: str) -> None:
        await self.handle()

    async def handle(self) -> None:
        await self.echo()

    post = put = patch = delete = options = get

    async def head(self, *_: str) -> None:
        self.set_status(200)
        self.finish()


class EchoHandler(_Base):
    pass


class SlowHandler(_Base):
    async def handle(self) -> None:
        try:
            ms = min(max(int(self.get_query_argument("ms", "1000")), 0), MAX_SLOW_MS)
        except ValueError:
            raise tornado.web.HTTPError(400, "ms must be an integer") from None
        await asyncio.sleep(ms / 1000)
        await self.echo(slept_ms=ms)


class StatusHandler(_Base):
    async def handle(self) -> None:
        code = int(self.path_args[0])
        if not 200 <= code <= 599 or code in (204, 304):
            raise tornado.web.HTTPError(400, "status must be 200-599 and carry a body")
        await self.echo(status=code)


def _log_request(handler: tornado.web.RequestHandler) -> None:
    # 5xx here are answers the tests asked for, not errors of the simulator.
    request = handler.request
    ms = 1000.0 * request.request_time()
    access_log.info("%d %s %s %.1fms", handler.get_status(), request.method, request.path, ms)


def make_app(config: dict[str, Any] | None = None) -> tornado.web.Application:
    """``config``: ``jwks_url`` (verify identity assertions), ``audience`` (expected ``aud``)."""
    config = config or {}
    deps = {"jwks": JwksCache(config.get("jwks_url")), "audience": config.get("audience")}
    return tornado.web.Application(
        [
            (r"/slow/?", SlowHandler, deps),
            (r"/status/([0-9]{3})/?", StatusHandler, deps),
            (r"/.*", EchoHandler, deps),
        ],
        log_function=_log_request,
    )


def default_jwks_url() -> str:
    """The platform's JWKS when started by ``superapp serve`` (same environment)."""
    base = os.environ.get("SUPERAPP_PUBLIC_URL") or "http://{}:{}".format(
        os.environ.get("SUPERAPP_HOST", "127.0.0.1"), os.environ.get("SUPERAPP_PORT", "8080")
    )
    return base.rstrip("/") + "/.well-known/jwks.json"


async def serve(host: str, port: int, data_dir: str | None = None, **options: Any) -> None:
    """Run until cancelled. ``data_dir`` is unused: the echo service keeps no state."""
    options.setdefault("jwks_url", None)
    options["jwks_url"] = options["jwks_url"] or default_jwks_url()
    app = make_app(options)
    server = app.listen(port, address=host, xheaders=False)
    try:
        await asyncio.Event().wait()
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9001)
    parser.add_argument("--jwks-url")
    parser.add_argument("--audience")
    args = parser.parse_args()
    loops.run(serve(args.host, args.port, None, jwks_url=args.jwks_url, audience=args.audience))


if __name__ == "__main__":
    main()
