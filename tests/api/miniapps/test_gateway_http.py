"""The gateway's own HTTP/1.1 handling (it runs on Tornado's connection directly, not
through a RequestHandler): keep-alive, pipelining, HTTP/1.0, 100-continue, methods,
and a citizen who hangs up while the upstream is still thinking."""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.api.miniapps.conftest import Unit, citizen
from tests.support import Api

pytestmark = pytest.mark.asyncio


async def _open(api: Api) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    url = urlsplit(api.base_url)
    return await asyncio.open_connection(url.hostname, url.port)


async def _answer(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    fields = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            fields[name.strip().lower()] = value.strip()
    if "content-length" in fields:
        body = await reader.readexactly(int(fields["content-length"]))
    elif fields.get("transfer-encoding") == "chunked":
        body = b""
        while size := int((await reader.readuntil(b"\r\n"))[:-2], 16):
            body += (await reader.readexactly(size + 2))[:-2]
        await reader.readuntil(b"\r\n")
    else:
        body = await reader.read()
    return int(lines[0].split()[1]), fields, body


async def test_keep_alive_pipelining_and_http_1_0(api: Api, unit: Unit, echo_url: str) -> None:
    app_id = await unit.live(echo_url)
    token = (await citizen(api))["token"]
    auth = f"Authorization: Bearer {token}\r\n"
    reader, writer = await _open(api)
    try:
        # Two requests in one write: answered in order on the same connection.
        writer.write(
            f"GET /m/{app_id}/one HTTP/1.1\r\nHost: x\r\n{auth}\r\n"
            f"GET /m/{app_id}/two?x=1 HTTP/1.1\r\nHost: x\r\n{auth}X-Request-Id: mine-2\r\n\r\n"
            .encode()
        )  # fmt: skip
        for path, rid in (("/one", None), ("/two", "mine-2")):
            status, fields, body = await _answer(reader)
            assert status == 200, body
            assert json.loads(body)["path"].endswith(path)
            assert fields["x-request-id"] == (rid or fields["x-request-id"])
            assert "date" in fields and "server" not in fields
        # A problem on the same connection keeps it open too.
        writer.write(f"GET /m/{app_id}/x HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        status, fields, body = await _answer(reader)
        assert status == 401 and fields["content-type"] == "application/problem+json"
        assert json.loads(body)["code"] == "unauthorized"
        writer.write(f"GET /m/{app_id}/three HTTP/1.1\r\nHost: x\r\n{auth}\r\n".encode())
        assert (await _answer(reader))[0] == 200
    finally:
        writer.close()
    # HTTP/1.0 without keep-alive: one answer, then the connection closes.
    reader, writer = await _open(api)
    try:
        writer.write(f"GET /m/{app_id}/old HTTP/1.0\r\n{auth}\r\n".encode())
        status, _, body = await _answer(reader)
        assert status == 200 and json.loads(body)["path"].endswith("/old")
        assert await reader.read() == b""
    finally:
        writer.close()


async def test_expect_100_continue_and_methods(api: Api, unit: Unit, echo_url: str) -> None:
    app_id = await unit.live(echo_url)
    token = (await citizen(api))["token"]
    reader, writer = await _open(api)
    try:
        writer.write(
            f"POST /m/{app_id}/form HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
            "Content-Type: text/plain\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n".encode()
        )
        assert await reader.readuntil(b"\r\n\r\n") == b"HTTP/1.1 100 (Continue)\r\n\r\n"
        writer.write(b"hello")
        status, _, body = await _answer(reader)
        assert status == 200 and json.loads(body)["body_bytes"] == 5
        # A method no route serves: 405 with Allow, as a problem.
        writer.write(f"TRACE /m/{app_id}/x HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        status, fields, body = await _answer(reader)
        assert status == 405 and "GET" in fields["allow"]
        assert json.loads(body)["code"] == "method-not-allowed"
        # HEAD of a problem: its headers, no body.
        writer.write(f"HEAD /m/{app_id}/x HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 401 ")
        writer.write(f"GET /m/{app_id}/x HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        assert (await _answer(reader))[0] == 401  # nothing of a HEAD body was left over
    finally:
        writer.close()


async def test_a_citizen_hanging_up_is_not_an_upstream_failure(
    api: Api, unit: Unit, echo_url: str
) -> None:
    app_id = await unit.live(echo_url)
    token = (await citizen(api))["token"]
    for i in range(6):  # more than the breaker's 5 consecutive failures
        reader, writer = await _open(api)
        body = "" if i % 2 else "Content-Length: 2\r\n\r\nhi"  # with a body, and without
        writer.write(
            f"POST /m/{app_id}/slow?ms=400 HTTP/1.1\r\nHost: x\r\n"
            f"Authorization: Bearer {token}\r\n{body or chr(13) + chr(10)}".encode()
        )
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.close()  # gone before the upstream answers
    await asyncio.sleep(0.1)
    resp = await api.get(f"/m/{app_id}/after", token=token)
    assert resp.status_code == 200, resp.text  # the breaker is still closed


async def test_a_citizen_leaving_mid_body_ends_the_request_quietly(
    api: Api, unit: Unit, echo_url: str
) -> None:
    app_id = await unit.live(echo_url)
    token = (await citizen(api))["token"]
    for auth in ("", f"Authorization: Bearer {token}\r\n"):  # refused, then admitted
        reader, writer = await _open(api)
        writer.write(
            f"POST /m/{app_id}/upload HTTP/1.1\r\nHost: x\r\n{auth}"
            "Content-Length: 100\r\n\r\n0123456789".encode()
        )
        await writer.drain()
        await asyncio.sleep(0.1)
        writer.close()  # 90 bytes short
    await asyncio.sleep(0.1)
    resp = await api.get(f"/m/{app_id}/after", token=token)  # no error logged, still serving
    assert resp.status_code == 200, resp.text


async def _raw_upstream(handler: Any) -> tuple[asyncio.AbstractServer, str]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    return server, f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"


async def test_an_upstream_failing_mid_body_is_a_502_not_a_hang(api: Api, unit: Unit) -> None:
    async def stalls_then_aborts(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await reader.readuntil(b"\r\n\r\n")  # takes the head, never the body
        await asyncio.sleep(1)
        writer.transport.abort()

    server, base = await _raw_upstream(stalls_then_aborts)
    try:
        app_id = await unit.live(base)
        token = (await citizen(api))["token"]

        async def body() -> Any:
            for _ in range(120):  # 7.5 MiB in 64 KiB pieces (cap 8), more than buffers hold
                yield b"x" * 65_536

        resp = await asyncio.wait_for(
            api.post(f"/m/{app_id}/upload", token=token, content=body()), timeout=20
        )
        assert resp.status_code == 502 and resp.json()["code"] == "upstream-unreachable"
    finally:
        server.close()


async def test_framing_of_odd_upstream_answers_and_requests(api: Api, unit: Unit) -> None:
    async def chunked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                await reader.readuntil(b"\r\n\r\n")
                # Both framings at once (RFC 9112: the chunks decide), then plain chunked.
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 20\r\nTransfer-Encoding: chunked\r\n"
                    b"\r\n5\r\nhello\r\n0\r\n\r\n"
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    server, base = await _raw_upstream(chunked)
    try:
        app_id = await unit.live(base)
        token = (await citizen(api))["token"]
        auth = f"Authorization: Bearer {token}\r\n"
        reader, writer = await _open(api)
        try:
            writer.write(f"GET /m/{app_id}/a HTTP/1.1\r\nHost: x\r\n{auth}\r\n".encode())
            status, fields, body = await _answer(reader)
            assert (status, body) == (200, b"hello") and "content-length" not in fields
            # An HTTP/1.0 client that keeps the connection: the body with its length.
            writer.write(
                f"GET /m/{app_id}/b HTTP/1.0\r\nConnection: keep-alive\r\n{auth}\r\n".encode()
            )
            status, fields, body = await _answer(reader)
            assert (status, body, fields["content-length"]) == (200, b"hello", "5")
            # Transfer codings other than chunked, or with a length: a 400 problem.
            writer.write(
                f"POST /m/{app_id}/c HTTP/1.1\r\nHost: x\r\n{auth}"
                "Transfer-Encoding: gzip\r\n\r\n".encode()
            )
            status, fields, body = await _answer(reader)
            assert status == 400 and json.loads(body)["status"] == 400
        finally:
            writer.close()
    finally:
        server.close()


async def test_refusals_come_before_100_continue_and_paths_are_checked(
    api: Api, unit: Unit, echo_url: str
) -> None:
    app_id = await unit.live(echo_url)
    token = (await citizen(api))["token"]
    reader, writer = await _open(api)
    try:  # not signed in, and waiting for 100 Continue: refused at once, nothing uploaded
        writer.write(
            f"POST /m/{app_id}/up HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n"
            "Expect: 100-continue\r\n\r\n".encode()
        )
        status, _, body = await asyncio.wait_for(_answer(reader), timeout=5)
        assert status == 401 and json.loads(body)["code"] == "unauthorized"
    finally:
        writer.close()
    # A NUL or bytes that are not UTF-8 in the rest of the path never reach the upstream.
    assert (await api.get(f"/m/{app_id}/a%00b", token=token)).status_code == 404
    assert (await api.get(f"/m/{app_id}/a%ffb", token=token)).status_code == 400
