"""The simulators' small HTTP/1.1 server: framing, keep-alive, errors, form arguments."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from server.sims import lean_http


class Echo(lean_http.Handler):
    def initialize(self, tag: str) -> None:
        self.tag = tag

    def post(self, name: str) -> None:
        self.set_header("Content-Type", "text/plain")
        body = (
            f"{self.tag} {name} {self.get_argument('a', '-', strip=False)} {len(self.request.body)}"
        )
        self.finish(body)

    def get(self, name: str) -> None:
        if name == "boom":
            raise RuntimeError("handler bug")
        if name == "gone":
            raise lean_http.HTTPError(404, "no such thing")
        self.set_status(204)
        self.finish()


class Refusing(lean_http.Handler):
    def prepare(self) -> None:
        self.set_status(401)
        self.finish("refused in prepare")

    def post(self) -> None:
        raise AssertionError("not reached")


@pytest_asyncio.fixture
async def port() -> AsyncIterator[int]:
    app = lean_http.Application([(r"/echo/(\w+)", Echo, {"tag": "T"}), (r"/refuse", Refusing, {})])
    server = await app.listen(0, "127.0.0.1")
    yield server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()


async def _exchange(port: int, raw: bytes, wait: float = 0.3) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw)
    out = b""
    try:
        while chunk := await asyncio.wait_for(reader.read(65536), wait):
            out += chunk
    except TimeoutError:
        pass
    writer.close()
    return out


@pytest.mark.asyncio
async def test_keep_alive_pipelined_requests_and_close(port: int) -> None:
    form = b"a=x%20y&b=2"
    raw = (
        b"POST /echo/one HTTP/1.1\r\nHost: h\r\nContent-Type: application/x-www-form-urlencoded"
        b"\r\nContent-Length: %d\r\n\r\n%s"
        % (len(form), form)
        + b"GET /echo/two HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
        + b"GET /echo/never HTTP/1.1\r\nHost: h\r\n\r\n"
    )
    out = await _exchange(port, raw)
    assert out.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"Content-Length: 12\r\n\r\nT one x y 11HTTP/1.1 204 No Content\r\n" in out
    assert out.count(b"HTTP/1.1") == 2  # the connection closed after the second answer


@pytest.mark.asyncio
async def test_errors_are_answered_and_prepare_can_finish(port: int) -> None:
    assert (await _exchange(port, b"GET /nowhere HTTP/1.1\r\n\r\n")).startswith(
        b"HTTP/1.1 404 Not Found"
    )
    assert (await _exchange(port, b"GET /echo/gone HTTP/1.1\r\n\r\n")).startswith(
        b"HTTP/1.1 404 Not Found"
    )
    assert (await _exchange(port, b"DELETE /echo/x HTTP/1.1\r\n\r\n")).startswith(
        b"HTTP/1.1 405 Method Not Allowed"
    )
    refused = await _exchange(port, b"POST /refuse HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
    assert refused.startswith(b"HTTP/1.1 401 Unauthorized") and refused.endswith(b"prepare")
    assert (await _exchange(port, b"nonsense\r\n\r\n")).startswith(b"HTTP/1.1 400")
    chunked = b"POST /echo/x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    assert (await _exchange(port, chunked)).startswith(b"HTTP/1.1 411")


@pytest.mark.asyncio
async def test_a_failing_handler_answers_500_and_keeps_serving(
    port: int, caplog: pytest.LogCaptureFixture
) -> None:
    raw = b"GET /echo/boom HTTP/1.1\r\n\r\nGET /echo/ok HTTP/1.1\r\n\r\n"
    with caplog.at_level("CRITICAL", logger="server.sims.lean_http"):
        out = await _exchange(port, raw)
    assert out.startswith(b"HTTP/1.1 500 Internal Server Error")
    assert b"HTTP/1.1 204 No Content" in out


@pytest.mark.asyncio
async def test_expect_continue_gets_100_before_the_body(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"POST /echo/big HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n")
    assert await reader.readuntil(b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
    writer.write(b"abc")
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK")
    writer.close()
