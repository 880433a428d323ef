"""``LeanHandler``: a route with a ``RequestHandler``'s shape, served straight on
Tornado's HTTP/1.1 connection.

Tornado's handler machinery (routing delegate, handler object with its header
bookkeeping, ``_execute``, ``finish``/``flush`` and output transforms) costs about
75 us of CPU per request here, as much as the connection's own parsing and
writing. For the routes that are called most (the counter's ``POST
/api/v1/ecert/verify``, the payment flow) that is a third of the request. A
``LeanHandler`` subclass is written exactly like a ``BaseHandler`` one (``async def
post(self, order_id)`` with ``require_user``, ``json_body``, ``send_json``, and
the same ``openapi`` declaration) and answers the same: RFC 9457 problems with the
same codes, ``X-Request-Id``, the body cap (400/413 at once for a bad or too
large ``Content-Length``, 413 after the body past the cap), 404 for NUL in a path
parameter, 405 with ``Allow``, metrics and the access log. What it leaves out is
what those routes do not use: ETags and ``If-None-Match``, cookies, XSRF, output
transforms (``compress_response`` is off), ``flush`` of a partial body.

A client that hangs up does not cancel the handler: like a ``RequestHandler``'s
coroutine it runs to its end (a verification or a payment half done would be
worse than an answer nobody reads), and its answer is dropped.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from typing import TYPE_CHECKING, Any

import tornado.httputil
import tornado.routing
import tornado.web
from tornado.httputil import HTTPHeaders, ResponseStartLine

from identity.errors import DomainError
from server import errors
from server.http import (
    RequestHelpers,
    http_date,
    http_error_problem,
    implemented_methods,
    new_request_id,
    reason,
    record_request,
    request_id_from,
)

if TYPE_CHECKING:
    from server.bootstrap import Services

log = logging.getLogger("superapp.http")

_CONTROL = tornado.web.RequestHandler._remove_control_chars_regex
_running: set[asyncio.Task[None]] = set()  # the event loop holds tasks only weakly


class LeanHandler(RequestHelpers):
    """Base of a lean route. Subclasses define ``get``/``post``/... as coroutines taking
    the path parameters, like a ``BaseHandler``'s, and the ``openapi`` declaration."""

    openapi: dict[str, dict[str, Any]] = {}
    max_body: int | None = None

    def __init__(
        self, svc: Services, request: tornado.httputil.HTTPServerRequest, template: str
    ) -> None:
        self.svc = svc
        self.request = request
        self.template = template
        self.request_id = ""
        self._principal = None
        self._body = b""
        self._too_large = False
        self._status = 200
        self._headers: dict[str, str] = {}
        self._answer: tuple[int, dict[str, str], bytes] | None = None

    @property
    def _cap(self) -> int:
        return self.max_body or self.svc.settings.max_body_bytes

    # what BaseHandler's users call -------------------------------------------------------

    def body(self) -> bytes:
        if self._too_large:
            raise tornado.web.HTTPError(413, f"The body may be at most {self._cap} bytes.")
        return self._body

    def get_query_argument(self, name: str, default: Any = None, strip: bool = True) -> Any:
        """As ``RequestHandler.get_query_argument``: the last value, UTF-8, control
        characters as spaces; ``default`` (None) when absent, never a missing-argument 400."""
        values = self.request.query_arguments.get(name)
        if not values:
            return default
        try:
            value = values[-1].decode()
        except UnicodeDecodeError:
            raise tornado.web.HTTPError(400, f"Invalid unicode in {name}") from None
        value = _CONTROL.sub(" ", value)
        return value.strip() if strip else value

    def set_status(self, status_code: int, reason: str | None = None) -> None:
        self._status = status_code

    def get_status(self) -> int:
        return self._status

    def set_header(self, name: str, value: Any) -> None:
        text = str(value)
        if _UNSAFE.search(text) or _UNSAFE.search(name):
            raise ValueError(f"Unsafe header value {text!r}")  # as RequestHandler refuses it
        self._headers[name] = text

    def clear_header(self, name: str) -> None:
        self._headers.pop(name, None)

    def finish(self, chunk: Any = None) -> None:
        """Answer with ``chunk`` (bytes, text, or a dict sent as JSON). Once only."""
        if self._answer is not None:
            raise RuntimeError("finish() called twice")
        if isinstance(chunk, dict):
            self._headers.setdefault("Content-Type", "application/json; charset=UTF-8")
            chunk = json.dumps(chunk).replace("</", "<\\/")
        if isinstance(chunk, str):
            chunk = chunk.encode()
        self._headers.setdefault("Content-Type", "text/html; charset=UTF-8")
        self._answer = (self._status, self._headers, chunk or b"")


_UNSAFE = re.compile(r"[\x00-\x1f]")


class LeanDelegate(tornado.httputil.HTTPMessageDelegate):
    """One request to a ``LeanHandler`` route, from its head to the answer."""

    def __init__(
        self,
        handler_class: type[LeanHandler],
        svc: Services,
        template: str,
        request: tornado.httputil.HTTPServerRequest,
        path_kwargs: dict[str, bytes],
        allowed: tuple[str, ...],
    ) -> None:
        self.handler_class = handler_class  # as Tornado's _HandlerDelegate names it
        self.allowed = allowed
        self.svc = svc
        self.template = template
        self.request = request
        self.conn: Any = request.connection
        self.path_kwargs = path_kwargs
        self.handler: LeanHandler | None = None
        self._chunks: list[bytes] = []
        self._size = 0
        self._started = time.perf_counter()
        self._status = 0
        self._answered = False
        self._gone = False
        self._running = False  # the handler's coroutine has started
        self._path: dict[str, str] = {}

    # Tornado's side --------------------------------------------------------------------

    def headers_received(
        self,
        start_line: tornado.httputil.RequestStartLine | tornado.httputil.ResponseStartLine,
        headers: HTTPHeaders,
    ) -> None:
        """What ``BaseHandler.prepare`` checks, in the same order."""
        handler = self.handler = self.handler_class(self.svc, self.request, self.template)
        handler.request_id = request_id_from(headers)
        self.conn.set_close_callback(self.on_connection_close)
        cap = handler._cap
        length = headers.get("Content-Length")
        if length is not None:
            if not (length.isascii() and length.isdigit()):
                return self._problem(errors.from_status(400, handler.request_id, _NAN))
            if int(length) > cap:
                detail = f"The body may be at most {cap} bytes."
                return self._problem(errors.from_status(413, handler.request_id, detail))
        try:
            self._path = self._decoded_path()  # refused before the body, as BaseHandler does
        except tornado.web.HTTPError as e:
            return self._problem(http_error_problem(e, handler.request_id))
        if self.request.method in ("POST", "PUT", "PATCH") and hasattr(
            self.conn, "set_max_body_size"
        ):
            # Past twice the cap the connection is dropped; up to it we answer 413.
            self.conn.set_max_body_size(cap * 2 + 1)
        return None

    def data_received(self, chunk: bytes) -> None:
        if self._answered or self.handler is None:
            return  # answered already: read and dropped
        self._size += len(chunk)
        if self._size > self.handler._cap:
            self.handler._too_large = True
            self._chunks.clear()
        elif not self.handler._too_large:
            self._chunks.append(chunk)

    def finish(self) -> None:
        if self._answered or self.handler is None:
            return
        self.handler._body = b"".join(self._chunks) if len(self._chunks) != 1 else self._chunks[0]
        self._chunks = []
        self._running = True
        task = asyncio.get_running_loop().create_task(self._run(self.handler))
        _running.add(task)
        task.add_done_callback(_running.discard)

    def on_connection_close(self) -> None:
        self._gone = True
        if not self._answered and not self._running:
            # Gone before the request was complete: logged as nginx does. A running
            # handler ends on its own and is logged then, also as 499.
            self._answered, self._status = True, 499
            self._done()

    # the request -----------------------------------------------------------------------

    async def _run(self, handler: LeanHandler) -> None:
        try:
            kwargs = self._path
            method = self.request.method or "GET"
            if method not in self.allowed:
                allowed = ", ".join(self.allowed)
                body = errors.from_status(405, handler.request_id, f"Use one of: {allowed}.")
                return self._problem(body, {"Allow": allowed})
            await getattr(handler, method.lower())(**kwargs)
            if handler._answer is None:
                handler.finish()
            status, headers, data = handler._answer  # type: ignore[misc]
            self._write(status, headers, data, handler.request_id)
        except Exception as e:
            if handler._answer is not None:
                # Answered before it failed: that answer stands, as with a RequestHandler.
                if not isinstance(e, (DomainError, tornado.web.HTTPError)):
                    self._log_unhandled(handler)
                status, headers, data = handler._answer
                self._write(status, headers, data, handler.request_id)
            elif isinstance(e, DomainError):
                retry = e.extra.get("retry_after")
                extra = {"Retry-After": str(int(retry))} if retry is not None else {}
                self._problem(errors.from_domain(e, handler.request_id), extra)
            elif isinstance(e, tornado.web.HTTPError):
                self._problem(http_error_problem(e, handler.request_id))
            else:
                self._log_unhandled(handler)
                self._problem(errors.from_status(500, handler.request_id))

    def _log_unhandled(self, handler: LeanHandler) -> None:
        extra = {"request_id": handler.request_id, "route": self.template}
        log.exception("unhandled error", extra=extra)

    def _decoded_path(self) -> dict[str, str]:
        out = {}
        for name, raw in self.path_kwargs.items():
            try:
                value = raw.decode()
            except UnicodeDecodeError:
                raise tornado.web.HTTPError(
                    400, f"Invalid unicode in {name}: {raw[:40]!r}"
                ) from None
            if "\x00" in value:
                raise tornado.web.HTTPError(404)  # no id or name holds NUL (PostgreSQL text can't)
            out[name] = value
        return out

    # answers ---------------------------------------------------------------------------

    def _problem(self, body: dict[str, Any], extra: dict[str, str] | None = None) -> None:
        data = json.dumps(body, ensure_ascii=False).encode()
        headers = {"Content-Type": "application/problem+json", "Cache-Control": "no-store"}
        if extra:
            headers.update(extra)
        self._write(body["status"], headers, data, body["request_id"])

    def _write(self, status: int, fields: dict[str, str], data: bytes, request_id: str) -> None:
        if self._answered:
            return
        self._answered, self._status = True, status
        if self._gone:
            self._status = 499  # the answer nobody reads
        else:
            headers = HTTPHeaders(fields)
            if status in (204, 304) or status < 200:
                # No content, and nothing that describes it (RFC 9110 sections 6.4.1, 15.3.5).
                for name in ("Content-Type", "Content-Length", "Content-Encoding"):
                    headers.pop(name, None)
                data = b""
            else:
                headers["Content-Length"] = str(len(data))
            headers["Date"] = http_date()
            headers["X-Request-Id"] = request_id or new_request_id()
            start = ResponseStartLine("HTTP/1.1", status, reason(status))
            head = self.request.method == "HEAD"
            try:
                self.conn.write_headers(start, headers, None if head or not data else data)
                self.conn.finish()
            except Exception:  # a field Tornado refuses: never leave the client waiting
                log.exception("answer not written", extra={"request_id": request_id})
                self._status = 500
                self.conn.close()
        self._done()

    def _done(self) -> None:
        request_id = self.handler.request_id if self.handler is not None else "-"
        method = self.request.method or "-"
        record_request(self.svc, method, self.template, self._status, self._started, request_id)


_NAN = "Content-Length is not a number."


class LeanTarget(tornado.routing.Router):
    """A rule's target for a ``LeanHandler`` route: Tornado's router hands a matched
    request to it (a ``Router`` is a documented rule target) with the path groups."""

    def __init__(self, handler_class: type[LeanHandler], svc: Services, template: str) -> None:
        self.handler_class = handler_class
        self.svc = svc
        self.template = template
        self.allowed = tuple(implemented_methods(handler_class))

    def find_handler(
        self, request: tornado.httputil.HTTPServerRequest, **kwargs: Any
    ) -> LeanDelegate:
        path_kwargs = kwargs.get("path_kwargs") or {}
        return LeanDelegate(
            self.handler_class, self.svc, self.template, request, path_kwargs, self.allowed
        )
