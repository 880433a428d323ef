"""A ``LeanHandler`` route answers exactly as the same code on a ``BaseHandler`` does:
the same status, problem code, headers that matter and body, for good requests and
for every kind of bad one a client can send."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from collections.abc import AsyncIterator
from typing import Any
from unittest import mock

import pytest
import pytest_asyncio
import tornado.httpserver
import tornado.netutil

from identity.errors import Conflict
from server.app import make_app
from server.http import BaseHandler, route
from server.lean import LeanDelegate, LeanHandler

pytestmark = pytest.mark.asyncio

CAP = 64


class _Echo:
    """The route's code, shared by both kinds of handler."""

    async def post(self: Any, name: str) -> None:
        who = self.require_user()
        body = self.json_body()
        if body.get("boom"):
            raise RuntimeError("boom")
        if body.get("empty"):
            self.set_status(204)
            self.finish()
            return
        if body.get("header"):
            self.set_header("X-Bad", "a\r\nInjected: 1")
        if body.get("late"):  # answered, then failed: the answer stands
            self.send_json({"done": True})
            raise RuntimeError("late")
        if body.get("busy"):
            raise Conflict("busy", retry_after=7)
        await asyncio.sleep(0)
        limit = self.query_int("limit", 5, 1, 10)
        self.set_header("X-Extra", "1")
        self.send_json({"name": name, "sub": who.sub, "body": body, "limit": limit}, 201)

    async def get(self: Any, name: str) -> None:
        self.send_json({"name": name, "q": self.get_query_argument("q", None)})


class EchoBase(_Echo, BaseHandler):
    pass


class EchoLean(_Echo, LeanHandler):
    pass


class Bare(LeanHandler):
    async def post(self) -> None:
        self.finish(b"plain")  # no send_json: bytes as they are


class Tornado:
    """The two routes behind one real HTTP server."""

    def __init__(self, port: int) -> None:
        self.port = port

    async def send(self, raw: bytes) -> list[tuple[int, dict[str, str], bytes]]:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        try:
            writer.write(raw)
            answers = []
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except asyncio.IncompleteReadError:
                    return answers
                lines = head.decode("latin-1").split("\r\n")
                fields = {}
                for line in lines[1:]:
                    if line:
                        k, _, v = line.partition(":")
                        fields[k.strip().lower()] = v.strip()
                n = int(fields.get("content-length", "0"))
                body = b"" if raw.startswith(b"HEAD") else await reader.readexactly(n)
                answers.append((int(lines[0].split()[1]), fields, body))
                if fields.get("connection", "").lower() == "close":
                    return answers
                if len(answers) == raw.count(b" HTTP/1."):
                    return answers
        finally:
            writer.close()


@pytest_asyncio.fixture
async def server() -> AsyncIterator[Tornado]:
    svc = mock.MagicMock()
    svc.settings.issuer = "http://test"
    svc.settings.max_body_bytes = CAP
    user = mock.MagicMock(kind="user", sub="acc_1")

    def verify(token: str) -> Any:
        if token != "good":
            from identity.errors import Unauthorized

            class InvalidToken(Unauthorized):
                code = "invalid-token"

            raise InvalidToken("bad token")
        return user

    svc.tokens.verify_access = verify
    app = make_app(
        svc,
        [route("/b/{name}", EchoBase), route("/l/{name}", EchoLean), route("/bare", Bare)],
    )
    [sock] = tornado.netutil.bind_sockets(0, "127.0.0.1", family=socket.AF_INET)
    srv = tornado.httpserver.HTTPServer(app)
    srv.add_sockets([sock])
    yield Tornado(sock.getsockname()[1])
    srv.stop()


def _request(
    method: str, path: str, body: bytes = b"", *, fields: str = "", length: bool = True
) -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: x\r\n{fields}"
    if length and (body or method in ("POST", "PUT")):
        head += f"Content-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + body


AUTH = "Authorization: Bearer good\r\n"
JSON = AUTH + "Content-Type: application/json\r\n"
CASES: list[tuple[str, str, str, bytes, str, bool]] = [
    # (name, method, path after the prefix, body, fields, declare a length)
    ("ok", "POST", "/n1?limit=3", b'{"a": 1}', JSON, True),
    ("get", "GET", "/n2?q=a%01b", b"", "", True),
    ("get escaped name", "GET", "/caf%C3%A9", b"", "", True),
    ("no token", "POST", "/n", b"{}", "Content-Type: application/json\r\n", True),
    ("bad token", "POST", "/n", b"{}", "Authorization: Bearer nope\r\n", True),
    ("bad json", "POST", "/n", b"{nope", JSON, True),
    ("not an object", "POST", "/n", b"[1]", JSON, True),
    ("empty body", "POST", "/n", b"", JSON, True),
    ("nul in json", "POST", "/n", b'{"a": "\\u0000"}', JSON, True),
    ("text/plain", "POST", "/n", b"{}", AUTH + "Content-Type: text/plain\r\n", True),
    ("query out of range", "POST", "/n?limit=99", b"{}", JSON, True),
    ("query not a number", "POST", "/n?limit=x", b"{}", JSON, True),
    ("domain error", "POST", "/n", b'{"busy": 1}', JSON, True),
    ("unexpected error", "POST", "/n", b'{"boom": 1}', JSON, True),
    ("failed after answering", "POST", "/n", b'{"late": 1}', JSON, True),
    ("no content", "POST", "/n", b'{"empty": 1}', JSON, True),
    ("header injection", "POST", "/n", b'{"header": 1}', JSON, True),
    ("method not allowed", "PUT", "/n", b"{}", JSON, True),
    ("delete", "DELETE", "/n", b"", JSON, True),
    ("options", "OPTIONS", "/n", b"", "", True),
    ("nul in path", "GET", "/a%00b", b"", "", True),
    ("bad utf-8 in path", "GET", "/a%FFb", b"", "", True),
    ("length not a number", "POST", "/n", b"", JSON + "Content-Length: 1x\r\n", False),
    ("declared too large", "POST", "/n", b"", JSON + f"Content-Length: {CAP + 1}\r\n", False),
    (
        "chunked too large",
        "POST",
        "/n",
        b"%x\r\n" % (CAP + 10) + b"x" * (CAP + 10) + b"\r\n0\r\n\r\n",
        JSON + "Transfer-Encoding: chunked\r\n",
        False,
    ),
    (
        "chunked",
        "POST",
        "/n",
        b'4\r\n{"a"\r\n4\r\n: 2}\r\n0\r\n\r\n',
        JSON + "Transfer-Encoding: chunked\r\n",
        False,
    ),
    ("client request id", "POST", "/n", b"{}", JSON + "X-Request-Id: mine.1\r\n", True),
    ("bad request id", "POST", "/n", b"{}", JSON + "X-Request-Id: no spaces\r\n", True),
]


def _comparable(answer: tuple[int, dict[str, str], bytes]) -> dict[str, Any]:
    status, fields, body = answer
    out: dict[str, Any] = {"status": status}
    for name in (
        "content-type", "content-length", "allow", "retry-after", "cache-control", "x-extra"
    ):  # fmt: skip
        out[name] = fields.get(name)
    rid = fields.get("x-request-id", "")
    out["request id"] = rid if rid.startswith("mine") else rid.startswith("req_")
    if body:
        value = json.loads(body)
        if isinstance(value, dict) and "request_id" in value:
            assert value.pop("request_id") == rid  # the problem names the header's id
        out["body"] = value
    return out


@pytest.mark.expect_error_logs  # the "unexpected error" case logs, as it should
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
async def test_lean_answers_as_a_request_handler_does(
    server: Tornado, case: tuple[str, str, str, bytes, str, bool], caplog: Any
) -> None:
    name, method, path, body, fields, length = case
    answers = {}
    for prefix in ("/b", "/l"):
        [answer] = await server.send(
            _request(method, prefix + path, body, fields=fields, length=length)
        )
        answers[prefix] = _comparable(answer)
    base, lean = answers["/b"], answers["/l"]
    # The route's own name differs only in the echoed path: nothing else may.
    assert lean == base, name
    assert base["status"] in (200, 201, 204) or base["content-type"] == "application/problem+json"


@pytest.mark.expect_error_logs
async def test_the_expected_answers(server: Tornado, caplog: Any) -> None:
    """Spot checks of what the parity test compares (so it cannot pass on two wrongs)."""

    async def one(*args: Any, **kw: Any) -> tuple[int, dict[str, str], dict[str, Any]]:
        [(status, fields, body)] = await server.send(_request(*args, **kw))
        return status, fields, json.loads(body)

    status, _, body = await one("POST", "/l/n1?limit=3", b'{"a": 1}', fields=JSON)
    assert status == 201 and body == {"name": "n1", "sub": "acc_1", "body": {"a": 1}, "limit": 3}
    status, fields, body = await one("PUT", "/l/n", b"{}", fields=JSON)
    assert (status, body["code"], fields["allow"]) == (405, "method-not-allowed", "GET, POST")
    status, fields, body = await one("POST", "/l/n", b'{"busy": 1}', fields=JSON)
    assert (status, body["code"], fields["retry-after"]) == (409, "conflict", "7")
    with caplog.at_level(logging.ERROR, logger="superapp.http"):
        status, _, body = await one("POST", "/l/n", b'{"boom": 1}', fields=JSON)
    assert (status, body["code"]) == (500, "internal-error")
    assert "boom" not in body["detail"] and "unhandled error" in caplog.text
    status, _, body = await one(
        "POST", "/l/n", b"", fields=JSON + "Content-Length: 65\r\n", length=False
    )
    assert (status, body["code"]) == (413, "payload-too-large")
    assert (await one("GET", "/l/a%00b"))[0] == 404
    assert (await one("GET", "/l/n?q=a%01b"))[2]["q"] == "a b"


async def test_a_bad_path_is_refused_before_the_body(server: Tornado) -> None:
    """As BaseHandler: no ``100 Continue`` for a request that will be refused anyway."""
    for prefix in ("/b", "/l"):
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        try:
            writer.write(
                f"POST {prefix}/a%00b HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                "Content-Length: 10\r\n\r\n".encode()
            )
            line = await asyncio.wait_for(reader.readline(), 5)
            assert line.startswith(b"HTTP/1.1 404"), (prefix, line)
        finally:
            writer.close()


async def test_keep_alive_pipelining_and_http_1_0(server: Tornado) -> None:
    two = _request("POST", "/l/one", b"{}", fields=JSON) + _request(
        "GET", "/l/two", fields="X-Request-Id: mine-2\r\n"
    )
    first, second = await server.send(two)
    assert first[0] == 201 and json.loads(first[2])["name"] == "one"
    assert second[0] == 200 and second[1]["x-request-id"] == "mine-2"
    # A problem keeps the connection open as well.
    problem_then_ok = _request("POST", "/l/x", b"{nope", fields=JSON) + _request("GET", "/l/y")
    bad, good = await server.send(problem_then_ok)
    assert bad[0] == 400 and good[0] == 200
    # HTTP/1.0: the answer has its length and the connection closes after it.
    [(status, fields, body)] = await server.send(b"GET /l/old HTTP/1.0\r\n\r\n")
    assert status == 200 and int(fields["content-length"]) == len(body)
    # HEAD of a GET-only route is not allowed, and has no body.
    [(status, fields, body)] = await server.send(b"HEAD /l/n HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status == 405 and body == b"" and int(fields["content-length"]) > 0


async def test_bytes_answer_and_the_route_table(server: Tornado) -> None:
    [(status, fields, body)] = await server.send(_request("POST", "/bare", b""))
    assert (status, body) == (200, b"plain")
    assert fields["content-type"] == "text/html; charset=UTF-8"


async def test_a_client_that_hangs_up_does_not_stop_the_handler(server: Tornado) -> None:
    ran = asyncio.Event()

    class Slow(LeanHandler):
        async def post(self) -> None:
            await asyncio.sleep(0.2)
            ran.set()
            self.send_json({})

    svc = mock.MagicMock()
    svc.settings.issuer = "http://test"
    svc.settings.max_body_bytes = CAP
    app = make_app(svc, [route("/slow", Slow)])
    assert isinstance(app.find_handler(_fake_request("/slow")), LeanDelegate)
    [sock] = tornado.netutil.bind_sockets(0, "127.0.0.1", family=socket.AF_INET)
    srv = tornado.httpserver.HTTPServer(app)
    srv.add_sockets([sock])
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", sock.getsockname()[1])
        writer.write(_request("POST", "/slow", b"{}"))
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.close()
        await asyncio.wait_for(ran.wait(), 5)  # it ran to its end; its answer was dropped
        observed = [c.args for c in svc.metrics.observe.call_args_list]
        for _ in range(50):
            if observed:
                break
            await asyncio.sleep(0.02)
            observed = [c.args for c in svc.metrics.observe.call_args_list]
        assert [o[1:3] for o in observed] == [("/slow", 499)]
    finally:
        srv.stop()


def _fake_request(path: str) -> Any:
    from tornado.httputil import HTTPServerRequest, RequestStartLine

    return HTTPServerRequest(start_line=RequestStartLine("POST", path, "HTTP/1.0"))
