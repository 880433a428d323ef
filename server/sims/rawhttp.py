"""A small keep-alive HTTP/1.1 client for the hot server-to-server calls.

Used by the channel simulators' callbacks and, through ``server/channel_http.py``, by the
payment channel adapters and the merchant webhooks: httpx's pool and h11 machinery cost more
CPU per call than the handler it calls. This client writes the request by hand and reads a
``Content-Length``, chunked or close-delimited answer, keeping idle connections per host for
reuse. No redirects, no proxies, no cookies: none of these calls needs them.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Mapping
from urllib.parse import urlsplit

_MAX_HEAD = 64 * 1024
_MAX_BODY = 64 * 1024 * 1024  # a day's bill file fits


class HttpError(Exception):
    """The post failed before a complete answer came back (connect, timeout, framing)."""


_Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class RawHttpClient:
    def __init__(self, timeout: float = 5.0, max_idle_per_host: int = 64) -> None:
        self._timeout = timeout
        self._max_idle = max_idle_per_host
        self._idle: dict[tuple[str, str, int], list[_Conn]] = {}

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        """POST ``body``; return (status, body). Raises ``HttpError``."""
        status, _, content = await self.request("POST", url, body, headers)
        return status, content

    async def request(
        self,
        method: str,
        url: str,
        body: bytes,
        headers: Mapping[str, str],
        time_limit: float | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        """Send one request; return (status, lower-cased headers, body). Raises ``HttpError``."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise HttpError(f"unsupported URL {url!r}")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        key = (parts.scheme, parts.hostname, port)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        lines = [f"{method} {target} HTTP/1.1", f"Host: {parts.netloc}"]
        for k, v in headers.items():
            if any(c in k or c in v for c in "\r\n"):
                raise HttpError("a header contains a line break")
            lines.append(f"{k}: {v}")
        if body or method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(body)}")
        request = ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + body
        limit = self._timeout if time_limit is None else time_limit
        try:
            # A timeout scope rather than wait_for: no extra task per call.
            async with asyncio.timeout(limit):
                return await self._exchange(key, request)
        except TimeoutError as exc:
            raise HttpError("timed out") from exc

    async def _exchange(
        self, key: tuple[str, str, int], request: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        idle = self._idle.get(key)
        while idle:
            conn = idle.pop()
            try:
                # A kept connection may have been closed by the peer meanwhile: if nothing at
                # all comes back, try the next one (or a fresh one).
                return await self._roundtrip(key, conn, request)
            except _Stale:
                continue
        conn = await self._connect(key)
        try:
            return await self._roundtrip(key, conn, request)
        except _Stale as exc:
            raise HttpError("connection closed without an answer") from exc

    async def _connect(self, key: tuple[str, str, int]) -> _Conn:
        scheme, host, port = key
        try:
            return await asyncio.open_connection(
                host, port, ssl=ssl.create_default_context() if scheme == "https" else None
            )
        except OSError as exc:
            raise HttpError(f"connect failed: {exc}") from exc

    async def _roundtrip(
        self, key: tuple[str, str, int], conn: _Conn, request: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        reader, writer = conn
        keep = False
        try:
            try:
                writer.write(request)
                await writer.drain()
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError) as exc:
                if isinstance(exc, asyncio.IncompleteReadError) and exc.partial:
                    raise HttpError("truncated answer") from exc
                raise _Stale from exc
            except (asyncio.LimitOverrunError, OSError) as exc:
                raise HttpError(f"read failed: {exc}") from exc
            if len(head) > _MAX_HEAD:
                raise HttpError("answer head too large")
            status, fields = _parse_head(head)
            body, keep = await _read_body(reader, status, fields, request.startswith(b"HEAD "))
            return status, fields, body
        finally:
            if keep and not writer.is_closing():
                idle = self._idle.setdefault(key, [])
                if len(idle) < self._max_idle:
                    idle.append(conn)
                else:
                    writer.close()
            else:
                writer.close()

    async def aclose(self) -> None:
        for conns in self._idle.values():
            for _, writer in conns:
                writer.close()
        self._idle.clear()


class _Stale(Exception):
    pass


def _parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    status_line = lines[0].split(" ", 2)
    version = status_line[0]
    if len(status_line) < 2 or not version.startswith("HTTP/1.") or not status_line[1].isdigit():
        raise HttpError("malformed status line")
    fields: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise HttpError("malformed header line")
        fields[name.strip().lower()] = value.strip()
    if version == "HTTP/1.0" and fields.get("connection", "").lower() != "keep-alive":
        fields["connection"] = "close"
    return int(status_line[1]), fields


async def _read_body(
    reader: asyncio.StreamReader, status: int, fields: dict[str, str], head_only: bool = False
) -> tuple[bytes, bool]:
    """(body, whether the connection can be reused)."""
    keep = fields.get("connection", "").lower() != "close"
    try:
        if head_only or status in (204, 304) or 100 <= status < 200:
            return b"", keep
        if "chunked" in fields.get("transfer-encoding", "").lower():
            chunks: list[bytes] = []
            size = 0
            while True:
                line = await reader.readuntil(b"\r\n")
                n = int(line.split(b";", 1)[0].strip(), 16)
                if n == 0:
                    while (await reader.readuntil(b"\r\n")) != b"\r\n":
                        pass  # trailers
                    return b"".join(chunks), keep
                size += n
                if size > _MAX_BODY:
                    raise HttpError("answer body too large")
                chunks.append(await reader.readexactly(n))
                await reader.readexactly(2)
        length = fields.get("content-length")
        if length is not None:
            if not length.isdigit() or int(length) > _MAX_BODY:
                raise HttpError("bad Content-Length")
            return await reader.readexactly(int(length)), keep
        # Delimited by the close: read to the end of the stream.
        chunks = []
        size = 0
        while chunk := await reader.read(65536):
            size += len(chunk)
            if size > _MAX_BODY:
                raise HttpError("answer body too large")
            chunks.append(chunk)
        return b"".join(chunks), False
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError, OSError) as exc:
        raise HttpError(f"bad answer body: {exc}") from exc
