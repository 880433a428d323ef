"""The gateway's lean pooled keep-alive HTTP/1.1 client, streaming both ways.

It replaces aiohttp on the gateway's hot path (aiohttp's request machinery was about
30 % of a proxied request's CPU). The caller names the address to connect to (the
SSRF-checked IP and port) and what to say as ``Host`` / TLS ``server_hostname``; there
is no DNS lookup here, no proxy from the environment, no cookies and no redirects.

* Idle connections are pooled per (scheme, IP, port, server name); at most
  ``limit_per_key`` connections per key are open at once (further requests wait, and the
  wait counts against the connect timeout) and idle ones are dropped after
  ``keepalive_timeout`` seconds.
* The request line and headers go out in one write; a request body comes from an async
  iterator, sent as is when the caller gives its ``Content-Length`` and chunked otherwise,
  while the response head is awaited (an upstream may answer before reading the body).
* The response head is parsed strictly (size cap, no bare CR or LF, no obsolete line
  folding, token header names, one ``Content-Length``); ``1xx`` heads are skipped. The
  body streams back in chunks for ``Content-Length``, chunked and close-delimited
  answers; ``HEAD``, ``204`` and ``304`` have none.
* A connection goes back to the pool only when the answer was read to its end, the whole
  request body was sent and neither side said ``Connection: close``.
* A pooled connection the upstream closed while it was idle is retried once on a fresh
  connection when no byte of the answer came back and the request can be replayed (an
  idempotent method without a body).
* Errors: :class:`ConnectTimeout` (no connection within the connect timeout),
  :class:`ReadTimeout` (no byte for the read timeout), :class:`UpstreamError` (anything
  else: refused, reset, malformed answer).
"""

from __future__ import annotations

import asyncio
import collections
import re
import ssl
import time
from collections.abc import AsyncIterator, Iterable
from typing import Any

MAX_HEAD = 64 * 1024  # the response status line and headers together
_READ = 65536
_IDEMPOTENT = frozenset(("GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"))
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
_BAD_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
_TOKEN_TEXT = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
_BAD_TEXT = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,16}\Z")


class UpstreamError(Exception):
    """The exchange failed (refused, reset, malformed or truncated answer)."""


class ConnectTimeout(UpstreamError):
    """No connection (or free pool slot) within the connect timeout."""


class ReadTimeout(UpstreamError):
    """The upstream sent nothing for the read timeout."""


class _Stale(Exception):
    """A reused connection ended before any byte of the answer."""


class _Conn:
    __slots__ = ("key", "reader", "writer", "idle_since")

    def __init__(self, key: tuple[str, str, int, str | None], reader: Any, writer: Any) -> None:
        self.key = key
        self.reader: asyncio.StreamReader = reader
        self.writer: asyncio.StreamWriter = writer
        self.idle_since = 0.0

    def usable(self) -> bool:
        return not self.writer.is_closing() and not self.reader.at_eof() and not self.reader._buffer  # type: ignore[attr-defined]

    def close(self) -> None:
        self.writer.transport.abort()


class UpstreamClient:
    def __init__(
        self,
        limit_per_key: int = 256,
        keepalive_timeout: float = 30.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._limit = limit_per_key
        self._keepalive = keepalive_timeout
        self._ssl = ssl_context
        self._idle: dict[tuple[str, str, int, str | None], list[_Conn]] = {}
        self._open: collections.Counter[tuple[str, str, int, str | None]] = collections.Counter()
        self._waiters: dict[tuple[str, str, int, str | None], collections.deque[Any]] = {}
        self._closed = False

    async def request(
        self,
        method: str,
        scheme: str,
        address: str,
        port: int,
        target: str,
        headers: Iterable[tuple[str, str]],
        *,
        body: AsyncIterator[bytes] | None = None,
        content_length: int | None = None,
        server_hostname: str | None = None,
        connect_timeout: float = 3.0,
        read_timeout: float = 10.0,
    ) -> UpstreamResponse:
        """Send one request; return once the answer's head is in (its body streams)."""
        key = (scheme, address, port, server_hostname if scheme == "https" else None)
        lines = [f"{method} {target} HTTP/1.1"]
        names = []
        for name, value in headers:
            names.append(name)
            lines.append(f"{name}: {value}")
        # One check for all: every name a token, no value with a line break or control byte.
        if (names and not _TOKEN_TEXT.match("".join(names))) or _BAD_TEXT.search("".join(lines)):
            raise UpstreamError("a request header contains a line break or control byte")
        if body is not None:
            if content_length is None:
                lines.append("Transfer-Encoding: chunked")
            else:
                lines.append(f"Content-Length: {content_length}")
        try:
            head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        except UnicodeEncodeError:
            raise UpstreamError("a request header is not Latin-1") from None
        replayable = body is None and method in _IDEMPOTENT
        conn = await self._acquire(key, connect_timeout)
        reused = conn.idle_since != 0.0
        try:
            return await self._exchange(conn, method, head, body, content_length, read_timeout)
        except _Stale:
            if not (reused and replayable):
                raise UpstreamError("the connection closed without an answer") from None
        conn = await self._acquire(key, connect_timeout, fresh=True)
        try:
            return await self._exchange(conn, method, head, body, content_length, read_timeout)
        except _Stale:
            raise UpstreamError("the connection closed without an answer") from None

    async def _exchange(
        self,
        conn: _Conn,
        method: str,
        head: bytes,
        body: AsyncIterator[bytes] | None,
        content_length: int | None,
        read_timeout: float,
    ) -> UpstreamResponse:
        sender: asyncio.Task[None] | None = None
        try:
            conn.writer.write(head)  # on a closed connection: dropped, and the read sees EOF
            if body is None:
                timer: Any = _Timer(conn, read_timeout)
            else:
                timer = _Timer(conn, read_timeout, armed=False)
                sender = asyncio.create_task(_send_body(conn, body, content_length, read_timeout))
                sender.add_done_callback(timer.body_sent)
            try:
                status, reason, fields = await _read_head(conn.reader, timer)
                while 100 <= status < 200:
                    if status == 101:
                        raise UpstreamError("the upstream switched protocols")
                    status, reason, fields = await _read_head(conn.reader, timer, first=False)
            finally:
                timer.stop()
            response = UpstreamResponse(self, conn, method, status, reason, fields, read_timeout)
            response._sender = sender
            return response
        except BaseException:
            if sender is not None and not sender.done():
                sender.cancel()
            self._discard(conn)
            raise

    async def _acquire(
        self, key: tuple[str, str, int, str | None], limit: float, fresh: bool = False
    ) -> _Conn:
        if self._closed:
            raise UpstreamError("the client is closed")
        idle = self._idle.get(key)
        if idle and not fresh:
            now = time.monotonic()
            while idle:
                conn = idle.pop()
                if conn.usable() and now - conn.idle_since < self._keepalive:
                    return conn
                self._discard(conn)
        deadline = asyncio.get_running_loop().time() + limit
        while self._open[key] >= self._limit:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.setdefault(key, collections.deque()).append(waiter)
            try:
                async with asyncio.timeout_at(deadline):
                    await waiter
            except BaseException as exc:
                if waiter.done() and not waiter.cancelled():
                    self._wake(key)  # woken but leaving: pass the turn on
                else:
                    waiter.cancel()
                if isinstance(exc, TimeoutError):
                    raise ConnectTimeout("no free connection to the upstream") from None
                raise
            if not fresh and (idle := self._idle.get(key)):
                conn = idle.pop()
                if conn.usable():
                    return conn
                self._discard(conn)
        self._open[key] += 1
        scheme, address, port, server_hostname = key
        context = None
        if scheme == "https":
            context = self._ssl or ssl.create_default_context()
            self._ssl = context
        try:
            async with asyncio.timeout_at(deadline):
                reader, writer = await asyncio.open_connection(
                    address, port, ssl=context, server_hostname=server_hostname, limit=MAX_HEAD
                )
        except TimeoutError:
            self._release_slot(key)
            raise ConnectTimeout("the upstream did not accept a connection") from None
        except (OSError, ssl.SSLError) as exc:
            self._release_slot(key)
            raise UpstreamError(f"connect failed: {exc}") from None
        except BaseException:
            self._release_slot(key)
            raise
        return _Conn(key, reader, writer)

    def _release_slot(self, key: tuple[str, str, int, str | None]) -> None:
        self._open[key] -= 1
        if self._open[key] <= 0:
            del self._open[key]
        self._wake(key)

    def _wake(self, key: tuple[str, str, int, str | None]) -> None:
        waiters = self._waiters.get(key)
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self._waiters.pop(key, None)

    def _discard(self, conn: _Conn) -> None:
        conn.close()
        self._release_slot(conn.key)

    def _keep(self, conn: _Conn) -> None:
        if self._closed or not conn.usable():
            self._discard(conn)
            return
        conn.idle_since = time.monotonic()
        self._idle.setdefault(conn.key, []).append(conn)
        self._wake(conn.key)

    def idle_count(self) -> int:
        return sum(len(v) for v in self._idle.values())

    async def close(self) -> None:
        self._closed = True
        for conns in self._idle.values():
            for conn in conns:
                conn.close()
        self._idle.clear()


class _Timer:
    """The read timeout: fails the reader's pending read when it fires."""

    __slots__ = ("conn", "delay", "handle", "fired", "stopped")

    def __init__(self, conn: _Conn, delay: float, armed: bool = True) -> None:
        self.conn = conn
        self.delay = delay
        self.fired = False
        self.stopped = False
        self.handle: asyncio.TimerHandle | None = None
        if armed:
            self.arm()

    def arm(self) -> None:
        if self.handle is None and self.delay > 0 and not self.stopped:
            self.handle = asyncio.get_running_loop().call_later(self.delay, self._fire)

    def body_sent(self, sender: asyncio.Task[None]) -> None:
        if sender.cancelled():
            return
        if sender.exception() is not None:
            self.conn.close()  # the read ends with what the upstream had sent, if anything
        else:
            self.arm()

    def _fire(self) -> None:
        self.fired = True
        self.conn.reader.set_exception(ReadTimeout("no answer in time"))
        self.conn.close()

    def cancel(self) -> None:
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None

    def stop(self) -> None:
        """Cancel for good (a late ``body_sent`` must not arm it again)."""
        self.stopped = True
        self.cancel()


async def _send_body(
    conn: _Conn, body: AsyncIterator[bytes], content_length: int | None, limit: float
) -> None:
    """Write the body; once the upstream failed or answered, keep draining it unsent."""
    writer = conn.writer
    sent = 0
    broken = False
    async for chunk in body:
        if broken or not chunk:
            continue
        if writer.is_closing():
            broken = True
            continue
        sent += len(chunk)
        if content_length is not None and sent > content_length:
            raise UpstreamError("the request body is longer than its Content-Length")
        try:
            if content_length is None:
                chunk = b"%x\r\n%b\r\n" % (len(chunk), chunk)
            writer.write(chunk)
            if writer.transport.get_write_buffer_size() > _READ:
                async with asyncio.timeout(limit):
                    await writer.drain()
        except (OSError, TimeoutError):
            broken = True  # the answer (or its absence) tells the caller what happened
            conn.close()
    if broken:
        raise UpstreamError("the upstream stopped reading the body")
    if content_length is not None and sent != content_length:
        raise UpstreamError("the request body is shorter than its Content-Length")
    if content_length is None:
        writer.write(b"0\r\n\r\n")


async def _read_head(
    reader: asyncio.StreamReader, timer: _Timer, first: bool = True
) -> tuple[int, str, list[tuple[str, str]]]:
    try:
        raw = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if timer.fired:
            raise ReadTimeout("no answer in time") from None
        if first and not exc.partial:
            raise _Stale from None
        raise UpstreamError("the answer's head was cut short") from None
    except asyncio.LimitOverrunError:
        raise UpstreamError(f"the answer's head is larger than {MAX_HEAD} bytes") from None
    except (ConnectionError, BrokenPipeError) as exc:
        if timer.fired:
            raise ReadTimeout("no answer in time") from None
        if first:
            raise _Stale from None
        raise UpstreamError(f"read failed: {exc}") from None
    except OSError as exc:
        raise UpstreamError(f"read failed: {exc}") from None
    if len(raw) > MAX_HEAD:
        raise UpstreamError(f"the answer's head is larger than {MAX_HEAD} bytes")
    return parse_head(raw)


def parse_head(raw: bytes) -> tuple[int, str, list[tuple[str, str]]]:
    """Parse a response head ending in CRLF CRLF: (status, reason, [(name, value)])."""
    lines = raw[:-4].split(b"\r\n")
    status_line = lines[0]
    if len(status_line) < 12 or status_line[:7] != b"HTTP/1." or status_line[8:9] != b" ":
        raise UpstreamError("malformed status line")
    code = status_line[9:12]
    if not code.isdigit() or status_line[12:13] not in (b"", b" "):
        raise UpstreamError("malformed status line")
    reason = status_line[13:]
    if _BAD_VALUE.search(reason) or b"\r" in reason:
        raise UpstreamError("malformed status line")
    fields: list[tuple[str, str]] = []
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep or not _TOKEN.match(name):
            raise UpstreamError("malformed header line")  # also obsolete line folding
        value = value.strip(b" \t")
        if b"\r" in value or _BAD_VALUE.search(value):
            raise UpstreamError("a header value contains a line break or control byte")
        fields.append((name.decode("ascii"), value.decode("latin-1")))
    if status_line[7:8] == b"0":  # HTTP/1.0: close unless kept alive explicitly
        if not any(n.lower() == "connection" and "keep-alive" in v.lower() for n, v in fields):
            fields.append(("Connection", "close"))
    return int(code), reason.decode("latin-1"), fields


class Headers:
    """The answer's fields in order, duplicates kept; ``get`` is case-insensitive."""

    __slots__ = ("_fields",)

    def __init__(self, fields: list[tuple[str, str]]) -> None:
        self._fields = fields

    def get(self, name: str, default: str | None = None) -> str | None:
        low = name.lower()
        for n, v in self._fields:
            if n.lower() == low:
                return v
        return default

    def get_all(self, name: str) -> list[str]:
        low = name.lower()
        return [v for n, v in self._fields if n.lower() == low]

    def items(self) -> list[tuple[str, str]]:
        return self._fields


class UpstreamResponse:
    """An answer whose head is in; read the body with :meth:`iter_chunks`, then :meth:`release`."""

    def __init__(
        self,
        client: UpstreamClient,
        conn: _Conn,
        method: str,
        status: int,
        reason: str,
        fields: list[tuple[str, str]],
        read_timeout: float,
    ) -> None:
        self._client = client
        self._conn: _Conn | None = conn
        self._sender: asyncio.Task[None] | None = None
        self._timeout = read_timeout
        self.status = status
        self.reason = reason
        self.headers = Headers(fields)
        self._keep = True
        self._length: int | None = None
        self._chunked = False
        self._done = False
        for name, value in fields:
            low = name.lower()
            if low == "connection" and "close" in value.lower():
                self._keep = False
            elif low == "transfer-encoding":
                self._chunked = value.lower().rsplit(",", 1)[-1].strip() == "chunked"
                if not self._chunked:
                    self._keep = False  # delimited by the close
            elif low == "content-length":
                if not (value.isascii() and value.isdigit()) or (
                    self._length is not None and self._length != int(value)
                ):
                    raise UpstreamError("bad Content-Length")
                self._length = int(value)
        if method == "HEAD" or status in (204, 304) or status < 200:
            self._length, self._chunked = 0, False
        elif self.headers.get("transfer-encoding") is not None:
            self._length = None  # RFC 9112 section 6.3: Transfer-Encoding overrides
        elif self._length is None:
            self._keep = False
        if self._length == 0 and not self._chunked:
            self._done = True

    @property
    def content_length(self) -> int | None:
        return None if self._chunked else self._length

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives. Raises :class:`ReadTimeout` or :class:`UpstreamError`."""
        if self._done:
            return
        conn = self._conn
        assert conn is not None
        reader = conn.reader
        timer = _Timer(conn, self._timeout, armed=False)
        try:
            if self._chunked:
                while True:
                    line = await self._read(timer, reader.readuntil(b"\r\n"))
                    size = line[:-2].split(b";", 1)[0].strip(b" \t")
                    if not _CHUNK_SIZE.match(size):
                        raise UpstreamError("malformed chunk size")
                    n = int(size, 16)
                    if n == 0:
                        while (await self._read(timer, reader.readuntil(b"\r\n"))) != b"\r\n":
                            pass  # trailers are not passed on
                        break
                    while n:
                        data = await self._read(timer, reader.read(min(n, _READ)))
                        if not data:
                            raise UpstreamError("the answer's body was cut short")
                        n -= len(data)
                        yield data
                    if await self._read(timer, reader.readexactly(2)) != b"\r\n":
                        raise UpstreamError("malformed chunk")
            elif self._length is not None:
                left = self._length
                while left:
                    data = await self._read(timer, reader.read(min(left, _READ)))
                    if not data:
                        raise UpstreamError("the answer's body was cut short")
                    left -= len(data)
                    yield data
            else:
                while data := await self._read(timer, reader.read(_READ)):
                    yield data
            self._done = True
        finally:
            timer.cancel()

    async def _read(self, timer: _Timer, op: Any) -> Any:
        timer.arm()
        try:
            return await op
        except asyncio.IncompleteReadError:
            if timer.fired:
                raise ReadTimeout("the upstream stopped answering") from None
            raise UpstreamError("the answer's body was cut short") from None
        except asyncio.LimitOverrunError:
            raise UpstreamError("malformed chunk") from None
        except OSError as exc:
            if timer.fired:
                raise ReadTimeout("the upstream stopped answering") from None
            raise UpstreamError(f"read failed: {exc}") from None
        finally:
            timer.cancel()

    def release(self) -> None:
        """Give the connection back (to the pool when reusable, closed otherwise)."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        sender = self._sender
        if sender is not None and not sender.done():
            sender.cancel()  # the upstream answered before the whole body was sent
        sent = sender is None or (
            sender.done() and not sender.cancelled() and sender.exception() is None
        )
        if self._done and self._keep and sent:
            self._client._keep(conn)
        else:
            self._client._discard(conn)
