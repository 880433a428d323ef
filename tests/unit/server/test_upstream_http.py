"""The gateway's upstream client: framing both ways, pooling, stale retry, strict parsing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from server.upstream_http import (
    ConnectTimeout,
    ReadTimeout,
    UpstreamClient,
    UpstreamError,
    UpstreamResponse,
    parse_head,
)

# One scripted connection: (reader, writer, connection number) -> None.
Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter, int], Awaitable[None]]


class Upstream:
    def __init__(self, script: Script) -> None:
        self.script = script
        self.conns = 0
        self.requests: list[bytes] = []

    async def start(self) -> Upstream:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.conns += 1
            try:
                await self.script(reader, writer, self.conns)
            except (asyncio.IncompleteReadError, ConnectionError):
                pass
            finally:
                writer.close()

        self.server = await asyncio.start_server(handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def read_request(self, reader: asyncio.StreamReader) -> bytes:
        head = await reader.readuntil(b"\r\n\r\n")
        low = head.lower()
        body = b""
        if b"content-length: " in low:
            length = int(low.split(b"content-length: ")[1].split(b"\r\n")[0])
            body = await reader.readexactly(length)
        elif b"transfer-encoding: chunked" in low:
            while True:
                line = await reader.readuntil(b"\r\n")
                body += line
                n = int(line[:-2], 16)
                body += await reader.readexactly(n + 2)
                if n == 0:
                    break
        self.requests.append(head + body)
        return head + body

    def close(self) -> None:
        self.server.close()


async def start(script: Script) -> Upstream:
    return await Upstream(script).start()


async def get(
    client: UpstreamClient, up: Upstream, method: str = "GET", **kw: Any
) -> tuple[UpstreamResponse, bytes]:
    headers = kw.pop("headers", [("Host", "app.example")])
    response = await client.request(method, "http", "127.0.0.1", up.port, "/p?q=1", headers, **kw)
    try:
        body = b"".join([chunk async for chunk in response.iter_chunks()])
    finally:
        response.release()
    return response, body


async def body_of(*chunks: bytes) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


def scripted(*answers: bytes) -> Script:
    holder: dict[str, Upstream] = {}

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _n: int) -> None:
        for raw in answers:
            await holder["up"].read_request(reader)
            writer.write(raw)
            await writer.drain()
        await reader.read()

    script.holder = holder  # type: ignore[attr-defined]
    return script


async def upstream(*answers: bytes) -> Upstream:
    script = scripted(*answers)
    up = await start(script)
    script.holder["up"] = up  # type: ignore[attr-defined]
    return up


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\nhello"


@pytest.mark.asyncio
async def test_content_length_keep_alive_reuse_and_header_order() -> None:
    up = await upstream(OK, OK, OK)
    client = UpstreamClient()
    try:
        for _ in range(3):
            response, body = await get(client, up)
            assert (response.status, response.reason, body) == (200, "OK", b"hello")
            assert response.headers.get_all("set-cookie") == ["a=1", "b=2"]
            assert response.headers.get("content-length") == "5"
        assert up.conns == 1 and client.idle_count() == 1
        assert up.requests[0] == b"GET /p?q=1 HTTP/1.1\r\nHost: app.example\r\n\r\n"
    finally:
        await client.close()
        up.close()


@pytest.mark.asyncio
async def test_chunked_answers_stream_and_the_connection_is_reused() -> None:
    chunked = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;ext=1\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nX-Trailer: t\r\n\r\n"
    )
    up = await upstream(chunked, OK)
    client = UpstreamClient()
    try:
        response, body = await get(client, up)
        assert body == b"hello world" and response.content_length is None
        _, body = await get(client, up)
        assert body == b"hello" and up.conns == 1
    finally:
        await client.close()
        up.close()


@pytest.mark.asyncio
async def test_close_delimited_answers_are_read_to_the_end_and_not_pooled() -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _n: int) -> None:
        await up.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\npart one, ")
        await writer.drain()
        writer.write(b"part two")
        await writer.drain()

    up = await start(script)
    client = UpstreamClient()
    try:
        _, body = await get(client, up)
        assert body == b"part one, part two"
        assert client.idle_count() == 0
    finally:
        await client.close()
        up.close()


@pytest.mark.asyncio
async def test_no_body_for_head_204_304_and_1xx_heads_are_skipped() -> None:
    up = await upstream(
        b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n",  # HEAD: the length, no body
        b"HTTP/1.1 204 No Content\r\n\r\n",
        b'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 304 Not Modified\r\nETag: "x"\r\n\r\n',
        OK,
    )
    client = UpstreamClient()
    try:
        response, body = await get(client, up, "HEAD")
        assert (response.status, body, response.headers.get("Content-Length")) == (200, b"", "1234")
        response, body = await get(client, up)
        assert (response.status, body) == (204, b"")
        response, body = await get(client, up)
        assert (response.status, body, response.headers.get("etag")) == (304, b"", '"x"')
        _, body = await get(client, up)
        assert body == b"hello" and up.conns == 1
    finally:
        await client.close()
        up.close()


@pytest.mark.asyncio
async def test_connection_close_and_http_1_0_are_not_pooled() -> None:
    up = await upstream(
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
    )
    up10 = await upstream(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok")
    client = UpstreamClient()
    try:
        assert (await get(client, up))[1] == b"ok"
        assert (await get(client, up10))[1] == b"ok"
        assert client.idle_count() == 0
    finally:
        await client.close()
        up.close()
        up10.close()


@pytest.mark.asyncio
async def test_a_connection_closed_while_idle_is_not_used() -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _n: int) -> None:
        await up.read_request(reader)
        writer.write(OK)
        await writer.drain()  # then close it while the client keeps it idle

    up = await start(script)
    client = UpstreamClient()
    try:
        await get(client, up)
        for _ in range(100):  # let the close reach the client's side (no timing asserted)
            await asyncio.sleep(0.01)
            if not client._idle[("http", "127.0.0.1", up.port, None)][0].usable():
                break
        _, body = await get(client, up, "POST")  # not replayable, yet never sent on the dead one
        assert body == b"hello" and up.conns == 2 and len(up.requests) == 2
    finally:
        await client.close()
        up.close()


def stale_after_first() -> tuple[Script, dict[str, Upstream]]:
    """The first connection answers once, then reads the next request and closes silently."""
    holder: dict[str, Upstream] = {}

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        up = holder["up"]
        await up.read_request(reader)
        writer.write(OK)
        await writer.drain()
        if n == 1:
            await up.read_request(reader)  # the race: closed just as the request came
            return
        await reader.read()

    return script, holder


@pytest.mark.asyncio
async def test_a_stale_connection_is_retried_once_for_idempotent_requests_only() -> None:
    script, holder = stale_after_first()
    up = holder["up"] = await start(script)
    client = UpstreamClient()
    try:
        await get(client, up)
        response, body = await get(client, up)  # sent on the stale one, retried on a fresh one
        assert (response.status, body, up.conns) == (200, b"hello", 2)
    finally:
        await client.close()
        up.close()

    script, holder = stale_after_first()
    up = holder["up"] = await start(script)
    client = UpstreamClient()
    try:
        await get(client, up)
        with pytest.raises(UpstreamError):
            await get(client, up, "POST", body=body_of(b"pay"), content_length=3)
        assert up.conns == 1  # a request that may have had an effect is not repeated
    finally:
        await client.close()
        up.close()


@pytest.mark.asyncio
async def test_request_bodies_stream_with_length_or_chunked() -> None:
    up = await upstream(OK, OK)
    client = UpstreamClient()
    try:
        await get(client, up, "PUT", body=body_of(b"ab", b"cd"), content_length=4)
        await get(client, up, "POST", body=body_of(b"ab", b"", b"cde"))
        assert up.requests[0].endswith(b"\r\nContent-Length: 4\r\n\r\nabcd")
        assert up.requests[1].endswith(
            b"\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n3\r\ncde\r\n0\r\n\r\n"
        )
        assert up.conns == 1
        with pytest.raises(UpstreamError):  # more than announced: never sent as complete
            await get(client, up, "PUT", body=body_of(b"abcdef"), content_length=4)
    finally:
        await client.close()
        up.close()


@pytest.mark.asyncio
async def test_an_early_answer_closes_the_connection_and_stops_the_body() -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _n: int) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 413 Too Large\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        await reader.read()

    up = await start(script)
    feed: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=1)

    async def body() -> AsyncIterator[bytes]:
        while (chunk := await feed.get()) is not None:
            yield chunk

    client = UpstreamClient()
    try:
        await feed.put(b"x" * 1000)
        response, _ = await get(client, up, "POST", body=body())
        assert response.status == 413 and client.idle_count() == 0
        sender = response._sender
        assert sender is not None
        await asyncio.gather(sender, return_exceptions=True)
        assert sender.cancelled()  # the rest of the body is not sent once the answer is in
    finally:
        await client.close()
        up.close()


@pytest.mark.asyncio
async def test_header_injection_is_refused_both_ways() -> None:
    up = await upstream(b"HTTP/1.1 200 OK\r\nX-A: 1\nX-B: 2\r\nContent-Length: 0\r\n\r\n")
    client = UpstreamClient()
    try:
        for headers in ([("X-A", "1\r\nX-Evil: 1")], [("X-A", "1\n")], [("Bad Name", "1")]):
            with pytest.raises(UpstreamError):
                await get(client, up, headers=headers)
        assert up.conns == 0  # refused before anything was sent
        with pytest.raises(UpstreamError):
            await get(client, up)  # a bare LF in the answer's head
    finally:
        await client.close()
        up.close()
    for raw in (
        b"HTTP/1.1 200 OK\r\nX-A: 1\r\n folded\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX-A : 1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX-A: 1\rX-B: 2\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX-A: \x00\r\n\r\n",
        b"HTTP/1.1 2000 OK\r\n\r\n",
        b"HTTP/2 200 OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
    ):
        with pytest.raises(UpstreamError):
            status, _, fields = parse_head(raw)
            UpstreamResponse(client, None, "GET", status, "", fields, 1.0)  # type: ignore[arg-type]


@pytest.mark.asyncio
async def test_an_oversized_head_is_refused() -> None:
    up = await upstream(b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n")
    client = UpstreamClient()
    try:
        with pytest.raises(UpstreamError, match="larger than"):
            await get(client, up)
    finally:
        await client.close()
        up.close()


@pytest.mark.asyncio
async def test_read_timeout_cut_body_and_refused_connection() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _n: int) -> None:
        await reader.read()

    async def cut_short(reader: asyncio.StreamReader, writer: Any, _n: int) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
        await writer.drain()

    up = await start(silent)
    cut = await start(cut_short)
    client = UpstreamClient()
    try:
        with pytest.raises(ReadTimeout):
            await get(client, up, read_timeout=0.05)
        with pytest.raises(UpstreamError, match="cut short"):
            await get(client, cut)
        port = up.port
        up.close()
        await up.server.wait_closed()
        with pytest.raises(UpstreamError) as info:
            await client.request("GET", "http", "127.0.0.1", port, "/", [])
        assert not isinstance(info.value, (ReadTimeout, ConnectTimeout))
    finally:
        await client.close()
        cut.close()


@pytest.mark.asyncio
async def test_the_pool_caps_open_connections_per_upstream() -> None:
    up = await upstream(OK, OK)
    client = UpstreamClient(limit_per_key=1)
    try:
        held = await client.request("GET", "http", "127.0.0.1", up.port, "/", [])
        with pytest.raises(ConnectTimeout):  # the one slot is busy
            await client.request("GET", "http", "127.0.0.1", up.port, "/", [], connect_timeout=0.05)
        waiting = asyncio.ensure_future(get(client, up))
        await asyncio.sleep(0)
        assert not waiting.done()
        _ = [chunk async for chunk in held.iter_chunks()]
        held.release()  # frees the slot: the waiting request reuses the connection
        _, body = await waiting
        assert body == b"hello" and up.conns == 1
    finally:
        await client.close()
        up.close()


def _tls_pair(tmp_path: Any, name: str) -> tuple[Any, Any]:
    """A CA, a certificate for ``name`` signed by it: (server context, client context)."""
    import datetime as dt
    import ssl

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)

    def cert(subject: str, key: Any, issuer: str, signer: Any, ca: bool) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=1))
            .not_valid_after(now + dt.timedelta(hours=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if ca:
            builder = builder.add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False), True
            ).add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
        else:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.DNSName(subject)]), critical=False
            ).add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()),
                critical=False,
            )
        return builder.sign(signer, hashes.SHA256())

    ca_key, leaf_key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    ca = cert("Test CA", ca_key, "Test CA", ca_key, True)
    leaf = cert(name, leaf_key, "Test CA", ca_key, False)
    pem = serialization.Encoding.PEM
    (tmp_path / "leaf.pem").write_bytes(leaf.public_bytes(pem) + ca.public_bytes(pem))
    (tmp_path / "leaf.key").write_bytes(
        leaf_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(tmp_path / "leaf.pem", tmp_path / "leaf.key")
    client = ssl.create_default_context(cadata=ca.public_bytes(pem).decode())
    return server, client


@pytest.mark.asyncio
async def test_https_verifies_the_name_given_and_sends_it_as_sni(tmp_path: Any) -> None:
    server_ctx, client_ctx = _tls_pair(tmp_path, "app.example")
    seen_sni: list[str | None] = []
    server_ctx.sni_callback = lambda _sock, name, _ctx: seen_sni.append(name)
    conns = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal conns
        conns += 1
        try:
            while True:
                await reader.readuntil(b"\r\n\r\n")
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecure")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_ctx)
    port = server.sockets[0].getsockname()[1]
    client = UpstreamClient(ssl_context=client_ctx)
    try:
        for _ in range(2):  # the second request reuses the TLS connection
            response = await client.request(
                "GET", "https", "127.0.0.1", port, "/", [("Host", "app.example")],
                server_hostname="app.example",
            )  # fmt: skip
            body = b"".join([c async for c in response.iter_chunks()])
            response.release()
            assert (response.status, body) == (200, b"secure")
        assert conns == 1 and seen_sni == ["app.example"]

        # A name the certificate does not carry, or a CA the client does not trust: refused.
        with pytest.raises(UpstreamError, match="connect failed"):
            await client.request(
                "GET", "https", "127.0.0.1", port, "/", [("Host", "evil.example")],
                server_hostname="evil.example",
            )  # fmt: skip
        untrusting = UpstreamClient()  # the system's CAs only
        with pytest.raises(UpstreamError, match="connect failed"):
            await untrusting.request(
                "GET", "https", "127.0.0.1", port, "/", [("Host", "app.example")],
                server_hostname="app.example",
            )  # fmt: skip
        await untrusting.close()
    finally:
        await client.close()
        server.close()
        await server.wait_closed()
