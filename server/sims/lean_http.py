"""A small HTTP/1.1 server for the payment channel simulators, on an asyncio ``Protocol``.

The simulators stand in for WeChat Pay and Alipay and share the machine with what they
test, so their CPU per request counts. Tornado's stream and ``RequestHandler`` machinery
cost more than the simulators' own work (it also re-registers the socket with epoll on every
request); this server keeps each connection's reader registered, parses a request with a
``Content-Length`` body (every client of a channel sends one), calls a synchronous handler
and writes the answer in one ``write``. Keep-alive as in HTTP/1.1; ``Connection: close``
and HTTP/1.0 are honoured. Handlers keep the few ``RequestHandler`` names they use.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable, Sequence
from http import HTTPStatus
from typing import Any, cast
from urllib.parse import parse_qsl, urlsplit

log = logging.getLogger(__name__)

_MAX_HEAD = 64 * 1024
_MAX_BODY = 16 * 1024 * 1024
# What Tornado's get_argument replaces with a space: control characters but \t \n \r.
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f]")


class HTTPError(Exception):
    def __init__(self, status: int, message: str = "") -> None:
        super().__init__(message)
        self.status = status


class Headers(dict[str, str]):
    """Request header fields under lower-cased names; look-ups in any case."""

    def get(self, name: str, default: Any = None) -> Any:  # type: ignore[override]
        return super().get(name.lower(), default)

    def __getitem__(self, name: str) -> str:
        return super().__getitem__(name.lower())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and super().__contains__(name.lower())


class Request:
    __slots__ = (
        "arguments", "body", "headers", "host", "method", "path", "protocol", "query", "uri",
    )  # fmt: skip

    def __init__(self, method: str, uri: str, headers: Headers, body: bytes) -> None:
        self.method = method
        self.uri = uri
        self.headers = headers
        self.body = body
        self.protocol = "http"
        self.host = headers.get("Host", "")
        parts = urlsplit(uri)
        self.path = parts.path
        self.query: dict[str, list[str]] = {}
        for k, v in parse_qsl(parts.query, keep_blank_values=True):
            self.query.setdefault(k, []).append(v)
        self.arguments = {k: list(v) for k, v in self.query.items()}
        ctype = headers.get("Content-Type", "")
        if body and ctype.split(";", 1)[0].strip() == "application/x-www-form-urlencoded":
            try:
                form = parse_qsl(body.decode("utf-8"), keep_blank_values=True)
            except UnicodeDecodeError:
                raise HTTPError(400, "form body is not UTF-8") from None
            for k, v in form:
                self.arguments.setdefault(k, []).append(v)


def _no_deps(self: Handler) -> None:
    pass


class Handler:
    """The ``RequestHandler`` subset the simulators use: one instance per request."""

    def __init__(self, request: Request, **deps: Any) -> None:
        self.request = request
        self._status = 200
        self._headers: dict[str, str] = {}
        self._chunks: list[bytes] = []
        self._finished = False
        self.initialize(**deps)

    # Subclasses take their own keyword arguments (the route's deps), as in Tornado.
    initialize: Callable[..., None] = _no_deps

    def prepare(self) -> None:
        pass

    def set_status(self, status: int) -> None:
        self._status = status

    def set_header(self, name: str, value: str) -> None:
        self._headers[name] = str(value)

    def write(self, chunk: bytes | str) -> None:
        self._chunks.append(chunk.encode() if isinstance(chunk, str) else chunk)

    def finish(self, chunk: bytes | str | None = None) -> None:
        if chunk is not None:
            self.write(chunk)
        self._finished = True

    def get_query_argument(self, name: str, default: str) -> str:
        values = self.request.query.get(name)
        return _CONTROL.sub(" ", values[-1]) if values else default

    def get_argument(self, name: str, default: str | None = None, *, strip: bool = True) -> str:
        values = self.request.arguments.get(name)
        if not values:
            if default is None:
                raise HTTPError(400, f"missing argument {name}")
            return default
        value = _CONTROL.sub(" ", values[-1])
        return value.strip() if strip else value


Route = tuple[str, type[Handler], dict[str, Any]]


class Application:
    def __init__(self, routes: Sequence[Route]) -> None:
        self.routes = [(re.compile(p + "$"), h, deps) for p, h, deps in routes]
        self.settings: dict[str, Any] = {}

    def respond(self, method: str, uri: str, headers: Headers, body: bytes) -> bytes:
        """The whole answer (status line, header fields, body) to one request."""
        status, fields, content = self._handle(method, uri, headers, body)
        reason = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else ""
        head = [f"HTTP/1.1 {status} {reason}"]
        head += [f"{k}: {v}" for k, v in fields.items()]
        if status != 204 and status != 304:
            head.append(f"Content-Length: {len(content)}")
        return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + content

    def _handle(
        self, method: str, uri: str, headers: Headers, body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        try:
            request = Request(method, uri, headers, body)
            for pattern, cls, deps in self.routes:
                match = pattern.match(request.path)
                if match is None:
                    continue
                handler = cls(request, **deps)
                action = getattr(handler, method.lower(), None)
                if method not in ("GET", "POST") or action is None:
                    raise HTTPError(405)
                handler.prepare()
                if not handler._finished:
                    action(*match.groups())
                content = b"" if handler._status in (204, 304) else b"".join(handler._chunks)
                return handler._status, handler._headers, content
            raise HTTPError(404)
        except HTTPError as exc:
            return exc.status, {"Content-Type": "text/plain"}, str(exc).encode()
        except Exception:
            log.exception("simulator handler failed: %s %s", method, uri)
            return 500, {"Content-Type": "text/plain"}, b"internal error"

    async def listen(self, port: int, address: str) -> asyncio.Server:
        loop = asyncio.get_running_loop()
        return await loop.create_server(lambda: _Connection(self), address, port)


class _Connection(asyncio.Protocol):
    def __init__(self, app: Application) -> None:
        self.app = app
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.continued = False  # "100 Continue" sent for the request being read

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TCPTransport implements asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while self.transport is not None and not self.transport.is_closing():
            if not self._one():
                return

    def _one(self) -> bool:
        """Answer the first complete request in the buffer; False if none is complete yet."""
        assert self.transport is not None
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self.buffer) > _MAX_HEAD:
                self._refuse(431)
            return False
        lines = bytes(self.buffer[:end]).decode("latin-1").split("\r\n")
        request_line = lines[0].split(" ")
        if len(request_line) != 3 or not request_line[2].startswith("HTTP/1."):
            self._refuse(400)
            return False
        method, uri, version = request_line
        headers = Headers()
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep or not name or name != name.strip():
                self._refuse(400)
                return False
            key = name.lower()
            value = value.strip()
            if key in headers:
                value = dict.__getitem__(headers, key) + "," + value
            dict.__setitem__(headers, key, value)
        if "transfer-encoding" in headers:
            self._refuse(411)  # no channel client sends a chunked request
            return False
        length = headers.get("content-length", "0")
        if not length.isdigit() or int(length) > _MAX_BODY:
            self._refuse(400 if not length.isdigit() else 413)
            return False
        start = end + 4
        if len(self.buffer) < start + int(length):
            if headers.get("expect", "").lower() == "100-continue" and not self.continued:
                self.continued = True  # curl waits for this before a body over 1 KB
                self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            return False
        self.continued = False
        body = bytes(self.buffer[start : start + int(length)])
        del self.buffer[: start + int(length)]
        connection = headers.get("connection", "").lower()
        close = connection == "close" or (version == "HTTP/1.0" and connection != "keep-alive")
        answer = self.app.respond(method, uri, headers, body)
        self.transport.write(answer)
        if close:
            self.transport.close()
        return True

    def _refuse(self, status: int) -> None:
        assert self.transport is not None
        reason = HTTPStatus(status).phrase
        self.transport.write(
            f"HTTP/1.1 {status} {reason}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode()
        )
        self.transport.close()
        self.buffer.clear()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
