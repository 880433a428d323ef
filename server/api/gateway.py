"""``ANY /m/{app_id}/{path}``: the reverse proxy from the citizen's app to a mini-app.

After ``GatewayCore.admit`` (route, token, gray version, assurance, consent,
rate limits, breaker) the request goes to the upstream's SSRF-checked address
over the pooled keep-alive client of ``server/upstream_http.py`` (aiohttp's
request machinery cost about 30 % of a proxied request's CPU, httpx's 3x more),
with client-sent ``X-Superapp-*``
and ``Authorization`` headers removed and a fresh identity assertion
(``X-Superapp-Identity``, a JWT the upstream verifies with our JWKS) added.
The citizen is admitted before the body is read, the request body streams
upstream as it arrives (back-pressure through a small queue) and the response
streams back, each with a size cap; redirects are passed on, never
followed. Upstream failures become 502/503/504 problems and count against
the upstream's circuit breaker.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Awaitable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

import tornado.web

from miniapps.errors import (
    InvalidGatewayPath,
    UpstreamResponseTooLarge,
    UpstreamTimeout,
    UpstreamUnreachable,
)
from miniapps.gateway import Admission
from server.http import BaseHandler, route
from server.openapi import op
from server.upstream_http import ConnectTimeout, ReadTimeout, UpstreamError, UpstreamResponse

if TYPE_CHECKING:
    from server.bootstrap import Services

IDENTITY_HEADER = "X-Superapp-Identity"
MAX_REQUEST_BODY = 8 * 1024 * 1024
MAX_RESPONSE_BODY = 32 * 1024 * 1024
# RFC 9110 section 7.6.1 hop-by-hop fields, plus what the gateway sets itself.
_HOP = frozenset(
    h.lower()
    for h in (
        "Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "TE",
        "Trailer", "Transfer-Encoding", "Upgrade", "Host", "Content-Length", "Authorization",
        "X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "X-Real-Ip", "Forwarded",
    )
)  # fmt: skip
_RESPONSE_DROP = frozenset(("connection", "keep-alive", "transfer-encoding", "trailer", "upgrade",
                            "proxy-authenticate", "server", "date"))  # fmt: skip

# RFC 3986 pchar plus "/" and "%" (escapes the client sent stay as sent).
_PATH_SAFE = "/%:@!$&'()*+,;=-._~"
_SEPARATORS = re.compile(r"[/\\]")


def upstream_path(raw_path: str) -> str:
    """What follows ``/m/{app_id}/`` in the raw request path, as the upstream gets it.

    Forwarded as the client encoded it (an escaped ``/`` stays data; the decoded
    form could hold control characters no request line may carry), with anything
    not allowed in a URL path escaped. A dot segment, even escaped (``%2e%2e``,
    ``..%2f``), is refused: it could climb above the app's upstream base path.
    """
    rest = raw_path.split("/", 3)[3] if raw_path.count("/") >= 3 else ""
    if any(part in (".", "..") for part in _SEPARATORS.split(unquote(rest))):
        raise InvalidGatewayPath("Dot segments ('.' and '..') are not forwarded.")
    return quote(rest, safe=_PATH_SAFE)


def _proxy_op(method: str) -> dict[str, Any]:
    return op(
        f"Proxy a {method} to the mini-app's upstream with an identity assertion",
        tag="gateway",
        auth="user",
        errors=(400, 401, 403, 404, 429, 502, 503, 504),
        content_type="*/*",
    )


class GatewayHandler(BaseHandler):
    max_body = MAX_REQUEST_BODY
    route_first = True  # no other route starts with /m/{app_id}/ (see server/app.py)
    openapi = {m: _proxy_op(m.upper()) for m in ("get", "post", "put", "patch", "delete")}

    def initialize(self, svc: Services, template: str = "", **kw: Any) -> None:
        super().initialize(svc, template, **kw)
        self._adm: Admission | None = None
        self._feed: asyncio.Queue[bytes | None] | None = None
        self._upstream: asyncio.Task[UpstreamResponse] | None = None
        self._t0 = time.perf_counter()

    async def prepare(self) -> None:  # type: ignore[override]
        """Admit before reading the body, then stream the body upstream as it arrives."""
        super().prepare()
        self._path = upstream_path(self.request.path)
        self._who = self.require_user()  # verified (cached), ended sessions refused
        self._adm = await self.svc.gateway.admit(self.path_kwargs["app_id"], self._who)
        self._t0 = time.perf_counter()
        headers = self.request.headers
        if headers.get("Content-Length", "0") != "0" or "Transfer-Encoding" in headers:
            self._feed = asyncio.Queue(maxsize=4)  # back-pressure: at most 4 chunks in flight
            self._upstream = asyncio.create_task(self._send(self._adm, self._body_stream()))

    async def _body_stream(self) -> AsyncIterator[bytes]:
        assert self._feed is not None
        while (chunk := await self._feed.get()) is not None:
            yield chunk

    def data_received(self, chunk: bytes) -> Awaitable[None] | None:  # type: ignore[override]
        if self._feed is None or self._upstream is None or self._too_large:
            return None
        self._size += len(chunk)
        if self._size > self._cap:
            self._too_large = True
            self._upstream.cancel()  # the upstream never sees a truncated body as complete
            return None
        if self._upstream.done():
            return None  # the upstream answered or failed early: drop the rest
        return self._feed.put(chunk)

    async def get(self, app_id: str, path: str) -> None:
        adm, who = self._adm, self._who
        assert adm is not None
        if self._too_large:
            adm.breaker.record(200)  # not the upstream's fault; releases a half-open probe
            raise tornado.web.HTTPError(413, f"The body may be at most {self._cap} bytes.")
        status: int | None = None
        try:
            if self._upstream is None:
                response = await self._send(adm, None)
            else:
                assert self._feed is not None
                await self._feed.put(None)
                response = await self._upstream
            status = await self._relay(response)
        finally:
            adm.breaker.record(status)
            self.svc.usage.record(app_id, status or 502, time.perf_counter() - self._t0)
            self.svc.usage.use(app_id, who.sub, who.sid)

    post = put = patch = delete = options = head = get

    def compute_etag(self) -> None:
        """No ETag of the gateway's own (nor a 304 from it): the upstream's headers pass on."""
        return None

    def on_connection_close(self) -> None:
        self._end_upstream()
        super().on_connection_close()

    def on_finish(self) -> None:
        self._end_upstream()
        super().on_finish()

    def _end_upstream(self) -> None:
        """Stop a request still going upstream; give back an answer never relayed (413)."""
        task = self._upstream
        if task is None:
            return
        if not task.done():
            task.cancel()
        elif not task.cancelled() and task.exception() is None:
            task.result().release()  # no-op when already relayed

    def _upstream_headers(self, adm: Admission) -> list[tuple[str, str]]:
        up = adm.version.upstream
        assert up is not None
        out: dict[str, str] = {}
        for name, value in self.request.headers.get_all():
            low = name.lower()
            if low in _HOP or low.startswith("x-superapp-"):
                continue  # never let the client speak for the platform
            out[name] = f"{out[name]}, {value}" if name in out else value
        default_port = 443 if up.scheme == "https" else 80
        out["Host"] = up.host if up.port == default_port else f"{up.host}:{up.port}"
        out["X-Forwarded-For"] = self.client_ip
        out["X-Forwarded-Proto"] = self.request.protocol
        out["X-Request-Id"] = self.request_id
        out[IDENTITY_HEADER] = self.svc.gateway.assertions.sign(adm.claims_json, self.request_id)
        return list(out.items())

    async def _send(self, adm: Admission, body: AsyncIterator[bytes] | None) -> UpstreamResponse:
        """Send the request upstream (body streamed); map failures to problems."""
        up = adm.version.upstream
        assert up is not None
        base = up.path.rstrip("/")
        query = f"?{self.request.query}" if self.request.query else ""
        timeout = adm.version.timeout
        length = self.request.headers.get("Content-Length")
        try:
            # The checked address is what we connect to, so no second DNS lookup can
            # redirect us; the name goes in Host and, for https, in SNI and the cert check.
            return await self.svc.upstream_http.request(
                self.request.method or "GET",
                up.scheme,
                str(up.addresses[0]),
                up.port,
                f"{base}/{self._path}{query}",
                self._upstream_headers(adm),
                body=body,
                content_length=int(length) if body is not None and length is not None else None,
                server_hostname=up.host,
                connect_timeout=min(3.0, timeout),
                read_timeout=timeout,
            )
        except ConnectTimeout:
            raise UpstreamUnreachable("The mini-app service did not accept a connection.") from None
        except ReadTimeout:
            raise UpstreamTimeout(f"No answer within {timeout:g} s.") from None
        except UpstreamError:
            raise UpstreamUnreachable("The mini-app service could not be reached.") from None

    async def _relay(self, response: UpstreamResponse) -> int:
        """Stream the upstream's answer back; return its status."""
        try:
            length = response.headers.get("Content-Length")
            if length and length.isascii() and length.isdigit() and int(length) > MAX_RESPONSE_BODY:
                raise UpstreamResponseTooLarge(f"At most {MAX_RESPONSE_BODY} bytes.")
            self.set_status(response.status, response.reason or None)
            self.clear_header("Content-Type")
            for name, value in response.headers.items():  # in order, duplicates kept
                if name.lower() not in _RESPONSE_DROP:
                    self.add_header(name, value)
            await self._stream(response)
        finally:
            response.release()
        return response.status

    async def _stream(self, response: UpstreamResponse) -> None:
        sent = 0
        try:
            async for chunk in response.iter_chunks():
                sent += len(chunk)
                if sent > MAX_RESPONSE_BODY:
                    # Headers are gone: cutting the connection is the only honest signal left.
                    self.request.connection.close()  # type: ignore[union-attr]
                    return
                self.write(chunk)
                if sent > 65536:
                    await self.flush()
        except (UpstreamError, OSError):
            if not self._headers_written:
                self.clear()
                raise UpstreamTimeout("The mini-app service stopped answering.") from None
            self.request.connection.close()  # type: ignore[union-attr]
            return
        self.finish()


ROUTES = [route("/m/{app_id}/{path:path}", GatewayHandler)]
