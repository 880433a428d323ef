"""The simulators' lean HTTP/1.1 client: framing, keep-alive reuse and failures."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from server.sims.rawhttp import HttpError, RawHttpClient

Answer = Callable[[bytes], bytes | None]  # request head+body -> raw answer (None: close)


async def _server(answer: Answer, requests: list[bytes], conns: list[int]):  # type: ignore[no-untyped-def]
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conns.append(1)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                request = head + await reader.readexactly(length)
                requests.append(request)
                raw = answer(request)
                if raw is None:
                    break
                writer.write(raw)
                await writer.drain()
                if b"connection: close" in raw.lower():
                    break
        except asyncio.IncompleteReadError:
            pass
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/notify?x=1"


@pytest.mark.asyncio
async def test_content_length_and_keep_alive_reuse() -> None:
    requests: list[bytes] = []
    conns: list[int] = []
    server, url = await _server(
        lambda _r: b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nsuccess", requests, conns
    )
    client = RawHttpClient()
    try:
        for _ in range(3):
            assert await client.post(url, b"a=1", {"Content-Type": "x"}) == (200, b"success")
        assert len(conns) == 1  # one connection, kept alive
        assert requests[0].startswith(b"POST /notify?x=1 HTTP/1.1\r\n")
        assert b"\r\nContent-Length: 3\r\n" in requests[0] and requests[0].endswith(b"a=1")
    finally:
        await client.aclose()
        server.close()


@pytest.mark.asyncio
async def test_chunked_204_and_close_delimited() -> None:
    answers = [
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nsuc\r\n4\r\ncess\r\n0\r\n\r\n",
        b"HTTP/1.1 204 No Content\r\n\r\n",
        b"HTTP/1.1 500 Oops\r\nConnection: close\r\n\r\nfail",
    ]
    server, url = await _server(lambda _r: answers.pop(0), [], [])
    client = RawHttpClient()
    try:
        assert await client.post(url, b"", {}) == (200, b"success")
        assert await client.post(url, b"", {}) == (204, b"")
        assert await client.post(url, b"", {}) == (500, b"fail")
    finally:
        await client.aclose()
        server.close()


@pytest.mark.asyncio
async def test_a_kept_connection_closed_by_the_peer_is_replaced() -> None:
    conns: list[int] = []
    calls: list[int] = []

    def answer(_r: bytes) -> bytes | None:
        calls.append(1)
        if len(calls) == 2:
            return None  # the server dropped the idle connection: no answer at all
        return b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

    server, url = await _server(answer, [], conns)
    client = RawHttpClient()
    try:
        assert await client.post(url, b"1", {}) == (200, b"ok")
        assert await client.post(url, b"2", {}) == (200, b"ok")
        assert len(conns) == 2
    finally:
        await client.aclose()
        server.close()


@pytest.mark.asyncio
async def test_failures_raise_http_error() -> None:
    client = RawHttpClient(timeout=0.5)
    server, url = await _server(
        lambda _r: b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nok", [], []
    )
    try:
        with pytest.raises(HttpError):
            await client.post("http://127.0.0.1:9/x", b"", {})  # refused
        with pytest.raises(HttpError):
            await client.post(url, b"", {})  # body shorter than announced, then closed
        with pytest.raises(HttpError):
            await client.post("ftp://example.org/x", b"", {})
    finally:
        await client.aclose()
        server.close()


@pytest.mark.asyncio
async def test_lean_http_speaks_the_httpx_subset_the_channels_use() -> None:
    import httpx

    from server.channel_http import LeanHttp

    requests: list[bytes] = []
    server, url = await _server(
        lambda _r: b"HTTP/1.1 200 OK\r\nWechatpay-Nonce: N1\r\nContent-Length: 2\r\n\r\n{}",
        requests,
        [],
    )
    http = LeanHttp(timeout=1)
    try:
        resp = await http.post(url, data={"a": "1 2", "b": "中"})
        assert (resp.status_code, resp.content) == (200, b"{}")
        assert resp.headers["wechatpay-nonce"] == "N1"
        assert b"Content-Type: application/x-www-form-urlencoded" in requests[-1]
        assert requests[-1].endswith(b"a=1+2&b=%E4%B8%AD")
        resp = await http.request("POST", url, content='{"x":"中"}', headers={"A": "b"})
        assert requests[-1].endswith('{"x":"中"}'.encode())
        with pytest.raises(httpx.HTTPError):
            await http.get("http://127.0.0.1:9/refused")
        with pytest.raises(httpx.HTTPError):
            await http.post(url, content=b"", headers={"X": "a\r\nInjected: 1"})
    finally:
        await http.aclose()
        server.close()


@pytest.mark.asyncio
async def test_a_close_delimited_answer_is_read_to_the_end() -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\n\r\nfirst part, ")
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(b"second part")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    client = RawHttpClient()
    try:
        url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/bill"
        status, _, body = await client.request("GET", url, b"", {})
        assert (status, body) == (200, b"first part, second part")
    finally:
        await client.aclose()
        server.close()
