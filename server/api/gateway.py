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

A proxied request is served by :class:`GatewayDelegate` straight on Tornado's
HTTP/1.1 connection (``HTTPMessageDelegate``), not by a ``RequestHandler``:
the handler machinery (routing delegate, handler object, header bookkeeping,
``finish``/``flush``) costs about 75 us per request here, as much again as
Tornado's connection handling itself, and a proxy has no use for it. The
application hands it every path under ``/m/{app_id}/`` (``server/app.py``);
errors are the same RFC 9457 problems as everywhere else.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote, unquote_to_bytes

import tornado.httputil
from tornado.httputil import HTTPHeaders, ResponseStartLine
from tornado.iostream import StreamClosedError

from identity.errors import DomainError, Unauthorized
from identity.tokens import Principal
from miniapps.errors import (
    InvalidGatewayPath,
    UpstreamResponseTooLarge,
    UpstreamTimeout,
    UpstreamUnreachable,
)
from miniapps.gateway import Admission
from server import errors
from server.http import (
    BaseHandler,
    bearer_principal,
    http_date,
    new_request_id,
    reason,
    record_request,
    request_id_from,
    route,
)
from server.openapi import op
from server.upstream_http import ConnectTimeout, ReadTimeout, UpstreamError, UpstreamResponse

if TYPE_CHECKING:
    from server.bootstrap import Services

log = logging.getLogger("superapp.http")

TEMPLATE = "/m/{app_id}/{path:path}"
IDENTITY_HEADER = "X-Superapp-Identity"
MAX_REQUEST_BODY = 8 * 1024 * 1024
MAX_RESPONSE_BODY = 32 * 1024 * 1024
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
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
                            "proxy-authenticate", "server", "date", "x-request-id"))  # fmt: skip
# Also without Content-Length: 1xx and 204 (RFC 9110 sections 6.4.1, 15.3.5), and an
# answer framed otherwise (chunked, or ended by the close).
_RESPONSE_DROP_LENGTH = _RESPONSE_DROP | {"content-length"}

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
    return _forwarded(rest, unquote(rest))


def _forwarded(rest: str, decoded: str) -> str:
    """``rest`` (as sent) for the upstream, given its percent-decoded form."""
    if any(part in (".", "..") for part in _SEPARATORS.split(decoded)):
        raise InvalidGatewayPath("Dot segments ('.' and '..') are not forwarded.")
    return quote(rest, safe=_PATH_SAFE)


class _Refusal(Exception):
    """A framework-level refusal (400, 404, 405, 413) before the citizen is admitted."""

    def __init__(self, status: int, detail: str | None = None, **headers: str) -> None:
        super().__init__(detail)
        self.status, self.detail, self.headers = status, detail, headers


class _ClientGone(Exception):
    """The citizen's connection closed while the request was in flight."""


_running: set[asyncio.Task[None]] = set()  # the event loop holds tasks only weakly


class GatewayDelegate(tornado.httputil.HTTPMessageDelegate):
    """One proxied request, from its head to the last byte of the answer.

    Tornado calls ``headers_received``, then ``data_received`` for each piece of the
    body, then ``finish``; it reads the body only once the future returned by
    ``headers_received`` is done, which is when the citizen has been admitted (or
    refused). The answer is written once the whole request body is in, like any
    handler's, except a 413 for a declared length over the cap, which goes at once
    (and the connection then closes).
    """

    def __init__(
        self, svc: Services, request: tornado.httputil.HTTPServerRequest, app_id: str, path: str
    ) -> None:
        self.svc = svc
        self.request = request
        self.conn: Any = request.connection
        self._raw_app_id = app_id
        self._raw_path = path
        self.request_id = ""
        self._started = time.perf_counter()
        self._status = 0  # the status answered to the citizen
        self._headers_sent = False
        self._answered = False
        self._feed: asyncio.Queue[bytes | None] | None = None
        self._upstream: asyncio.Task[UpstreamResponse] | None = None
        self._size = 0
        self._too_large = False
        self._task: asyncio.Task[None] | None = None
        self._gone = False  # the citizen's connection closed

    # Tornado's side --------------------------------------------------------------------

    def headers_received(
        self,
        start_line: tornado.httputil.RequestStartLine | tornado.httputil.ResponseStartLine,
        headers: HTTPHeaders,
    ) -> asyncio.Future[None]:
        loop = asyncio.get_running_loop()
        self._admitted: asyncio.Future[None] = loop.create_future()
        self._body_done: asyncio.Future[None] = loop.create_future()
        self.conn.set_close_callback(self.on_connection_close)
        self._task = task = loop.create_task(self._run())
        _running.add(task)
        task.add_done_callback(_running.discard)
        return self._admitted

    def data_received(self, chunk: bytes) -> Any:
        if self._feed is None or self._upstream is None or self._too_large:
            return None  # no body expected, or refused: read and dropped
        self._size += len(chunk)
        if self._size > MAX_REQUEST_BODY:
            self._too_large = True
            self._upstream.cancel()  # the upstream never sees a truncated body as complete
            return None
        if self._upstream.done():
            return None  # the upstream answered or failed early: drop the rest
        return self._feed.put(chunk)

    def finish(self) -> None:
        if not self._body_done.done():
            self._body_done.set_result(None)

    def on_connection_close(self) -> None:
        self._gone = True
        for future in (self._admitted, self._body_done):
            if not future.done():
                future.set_exception(_ClientGone())
                future.exception()  # retrieved: nobody else may be waiting for it
        if self._upstream is not None and not self._upstream.done():
            self._upstream.cancel()
        if self._task is not None and not self._task.done() and not self._answered:
            self._task.cancel()

    # the request -----------------------------------------------------------------------

    async def _run(self) -> None:
        upstream_status: int | None = None
        try:
            try:
                who, app_id = self._check()
                adm = await self.svc.gateway.admit(app_id, who)
            finally:
                if not self._admitted.done():
                    self._admitted.set_result(None)
            t0 = time.perf_counter()
            try:
                upstream_status = await self._proxy(adm, who)
            finally:
                failed = self._upstream_failed()
                if upstream_status is None and not failed and (self._too_large or self._gone):
                    adm.breaker.abandon()  # says nothing about the upstream
                    seen = 413 if self._too_large else 499
                else:
                    adm.breaker.record(upstream_status)
                    seen = upstream_status or 502
                self.svc.usage.record(app_id, seen, time.perf_counter() - t0)
                self.svc.usage.use(app_id, who.sub, who.sid)
        except _Refusal as r:
            body = errors.from_status(r.status, self.request_id, r.detail)
            await self._refuse(body, r.headers, wait=r.status not in (400, 413))
        except DomainError as e:
            retry = e.extra.get("retry_after")
            extra = {"Retry-After": str(int(retry))} if retry is not None else {}
            await self._refuse(errors.from_domain(e, self.request_id), extra)
        except (_ClientGone, asyncio.CancelledError, StreamClosedError):
            self._status = self._status or 499  # logged as nginx does: the client went away
        except Exception:
            extra = {"request_id": self.request_id, "route": TEMPLATE}
            log.exception("unhandled error", extra=extra)
            self._problem(errors.from_status(500, self.request_id), {})
        finally:
            self._end_upstream()
            self._done()

    def _upstream_failed(self) -> bool:
        """Whether the upstream call itself ended in an error (not a cancellation)."""
        task = self._upstream
        return (
            task is not None
            and task.done()
            and not task.cancelled()
            and (task.exception() is not None)
        )

    def _end_upstream(self) -> None:
        """Stop a request still going upstream; give back an answer never relayed (413)."""
        task = self._upstream
        if task is None:
            return
        if not task.done():
            task.cancel()
        elif not task.cancelled() and task.exception() is None:
            task.result().release()  # no-op when already relayed

    def _check(self) -> tuple[Principal, str]:
        """What the handler's ``prepare`` checks, in the same order, before admission."""
        request = self.request
        headers = request.headers
        self.request_id = request_id_from(headers)
        if request.method not in METHODS:
            raise _Refusal(405, f"Use one of: {', '.join(METHODS)}.", Allow=", ".join(METHODS))
        length = headers.get("Content-Length")
        if length is not None:
            if not (length.isascii() and length.isdigit()):
                raise _Refusal(400, "Content-Length is not a number.")
            if int(length) > MAX_REQUEST_BODY:
                raise _Refusal(413, f"The body may be at most {MAX_REQUEST_BODY} bytes.")
        coding = headers.get("Transfer-Encoding")
        if coding is not None and (coding.strip().lower() != "chunked" or length is not None):
            raise _Refusal(400, "Only a chunked Transfer-Encoding, without Content-Length.")
        try:
            app_id = unquote_to_bytes(self._raw_app_id).decode()
            rest = unquote_to_bytes(self._raw_path).decode()
        except UnicodeDecodeError:
            raise _Refusal(400, "The path is not valid UTF-8 once decoded.") from None
        if "\x00" in app_id or "\x00" in rest:
            raise _Refusal(404)  # no id holds NUL, nor is one passed on to an upstream
        if length not in (None, "0") or "Transfer-Encoding" in headers:
            self._feed = asyncio.Queue(maxsize=4)  # back-pressure: at most 4 chunks in flight
            if hasattr(self.conn, "set_max_body_size"):
                # Past twice the cap the connection is dropped; up to it we answer 413.
                self.conn.set_max_body_size(MAX_REQUEST_BODY * 2 + 1)
        self._path = _forwarded(self._raw_path, rest)  # the route's group: the raw rest
        who = bearer_principal(self.svc, headers)
        if who is None or who.kind != "user":
            raise Unauthorized("Sign in first: send an access token as a Bearer token.")
        who.require_level(1)
        return who, app_id

    async def _body_in(self) -> None:
        """Wait until Tornado has read the whole request body."""
        await self._body_done

    async def _body_stream(self) -> AsyncIterator[bytes]:
        assert self._feed is not None
        while (chunk := await self._feed.get()) is not None:
            yield chunk

    async def _proxy(self, adm: Admission, who: Principal) -> int:
        """Send upstream, relay the answer; return the upstream's status."""
        if self._feed is None:
            response = await self._send(adm, None)
            await self._body_in()
        else:
            feed = self._feed
            self._upstream = asyncio.ensure_future(self._send(adm, self._body_stream()))
            # Once the upstream call ends (answered early, failed, cancelled) nothing reads
            # the queue any more: empty it, which frees a put() Tornado may be blocked in.
            self._upstream.add_done_callback(lambda _: _drain(feed))
            await self._body_in()
            if self._too_large:
                raise _Refusal(413, f"The body may be at most {MAX_REQUEST_BODY} bytes.")
            if not self._upstream.done():
                await feed.put(None)
            response = await self._upstream
        try:
            await self._relay(response)
        finally:
            response.release()
        return response.status

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
        out["X-Forwarded-For"] = self.request.remote_ip or ""
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

    async def _relay(self, response: UpstreamResponse) -> None:
        """Stream the upstream's answer back: its status, fields in order, and body."""
        length = response.content_length
        if length is not None and length > MAX_RESPONSE_BODY:
            raise UpstreamResponseTooLarge(f"At most {MAX_RESPONSE_BODY} bytes.")
        status = response.status
        # An upstream that sent both Content-Length and chunked framing: the chunks decide.
        no_length = length is None or status == 204 or status < 200
        drop = _RESPONSE_DROP_LENGTH if no_length else _RESPONSE_DROP
        headers = HTTPHeaders()
        for name, value in response.headers.items():  # in order, duplicates kept
            if name.lower() not in drop:
                headers.add(name, value)
        headers["Date"] = http_date()
        headers["X-Request-Id"] = self.request_id
        chunks = response.iter_chunks()
        try:
            first = await anext(chunks, b"")
            if length is None and self.request.version != "HTTP/1.1" and first:
                # An HTTP/1.0 client gets no chunked framing: read the whole answer (within
                # the cap) so that it goes out with its Content-Length.
                parts, size = [first], len(first)
                async for chunk in chunks:
                    parts.append(chunk)
                    size += len(chunk)
                    if size > MAX_RESPONSE_BODY:
                        raise UpstreamResponseTooLarge(f"At most {MAX_RESPONSE_BODY} bytes.")
                first = b"".join(parts)
                headers["Content-Length"] = str(len(first))
        except UpstreamError:
            raise UpstreamTimeout("The mini-app service stopped answering.") from None
        start = ResponseStartLine("HTTP/1.1", status, response.reason or reason(status))
        self._status, self._headers_sent = status, True
        self.conn.write_headers(start, headers, first or None)
        sent = len(first)
        try:
            async for chunk in chunks:
                sent += len(chunk)
                if sent > MAX_RESPONSE_BODY:
                    # Headers are gone: cutting the connection is the only honest signal left.
                    self.conn.close()
                    return
                await self.conn.write(chunk)
        except (UpstreamError, OSError):
            self.conn.close()
            return
        self._answered = True
        self.conn.finish()

    # answers ---------------------------------------------------------------------------

    async def _refuse(self, body: dict[str, Any], extra: dict[str, str], wait: bool = True) -> None:
        """Answer a problem once the request body is in (``wait``), unless the citizen left.

        A client that waits for ``100 Continue`` before sending its body is answered at
        once (Tornado then sends no 100 and closes after the answer): it would otherwise
        upload up to the cap only to be refused."""
        expecting = self.request.headers.get("Expect", "").lower() == "100-continue"
        try:
            if wait and not expecting:
                await self._body_in()
        except (_ClientGone, asyncio.CancelledError):
            self._status = 499
            return
        self._problem(body, extra)

    def _problem(self, body: dict[str, Any], extra: dict[str, str]) -> None:
        if self._headers_sent:
            self.conn.close()  # too late for a problem: cutting the connection says it
            return
        self._status, self._headers_sent, self._answered = body["status"], True, True
        data = json.dumps(body, ensure_ascii=False).encode()
        headers = HTTPHeaders(
            {
                "Content-Type": "application/problem+json",
                "Cache-Control": "no-store",
                "Content-Length": str(len(data)),
                "Date": http_date(),
                "X-Request-Id": self.request_id or new_request_id(),
                **extra,
            }
        )
        start = ResponseStartLine("HTTP/1.1", body["status"], reason(body["status"]))
        self.conn.write_headers(start, headers, None if self.request.method == "HEAD" else data)
        self.conn.finish()

    def _done(self) -> None:
        method = self.request.method or "-"
        record_request(self.svc, method, TEMPLATE, self._status, self._started, self.request_id)


def _drain(queue: asyncio.Queue[bytes | None]) -> None:
    while not queue.empty():
        queue.get_nowait()


def _proxy_op(method: str) -> dict[str, Any]:
    return op(
        f"Proxy a {method} to the mini-app's upstream with an identity assertion",
        tag="gateway",
        auth="user",
        errors=(400, 401, 403, 404, 413, 429, 502, 503, 504),
        content_type="*/*",
    )


class GatewayRoute(BaseHandler):
    """The gateway's entry in the route table and the OpenAPI document.

    ``server/app.py`` gives every request whose path matches it to ``delegate``
    before any handler is chosen, so this class only describes the route."""

    route_first = True  # no other route starts with /m/{app_id}/ (see server/app.py)
    delegate = GatewayDelegate
    openapi = {m.lower(): _proxy_op(m) for m in METHODS if m not in ("HEAD", "OPTIONS")}


ROUTES = [route(TEMPLATE, GatewayRoute)]
