"""Simulator of an SMS gateway: the wire format ``identity.ports.HttpSms`` speaks.

``POST /messages`` ``{"to": "+86...", "text": "..."}`` with ``Authorization:
Bearer KEY`` -> 202 ``{"id": "msg_..."}``; the key is compared in constant
time; a wrong or missing key is 401, a malformed message 400. The messages are
kept in memory and readable at ``GET /messages?to=+86...`` (same key), newest
last, so that tests and a developer can read the codes that were "sent".

Run: ``python -m server.sims.sms --port 8702 --api-key KEY``.
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import json
import secrets
import time
from typing import Any

import tornado.web

from server import loops

DEFAULT_API_KEY = "demo-sms-key"  # noqa: S105 - a simulator's published demo key
MAX_TEXT = 1000


class MessagesHandler(tornado.web.RequestHandler):
    def initialize(self, api_key: str, sent: list[dict[str, Any]]) -> None:
        self.api_key = api_key.encode()
        self.sent = sent

    def prepare(self) -> None:
        given = self.request.headers.get("Authorization", "").encode()
        if not hmac.compare_digest(given, b"Bearer " + self.api_key):
            self._reply(401, {"error": "unauthorized"})

    def post(self) -> None:
        try:
            msg = json.loads(self.request.body or b"")
        except ValueError:
            msg = None
        if (
            not isinstance(msg, dict)
            or not isinstance(msg.get("to"), str)
            or not msg["to"].startswith("+")
            or not isinstance(msg.get("text"), str)
            or not 0 < len(msg["text"]) <= MAX_TEXT
        ):
            self._reply(400, {"error": "invalid-message"})
            return
        record = {"id": "msg_" + secrets.token_hex(8), "to": msg["to"], "text": msg["text"]}
        self.sent.append({**record, "received_at": time.time()})
        self._reply(202, {"id": record["id"]})

    def get(self) -> None:
        to = self.get_query_argument("to", None)
        self._reply(200, {"messages": [m for m in self.sent if to is None or m["to"] == to]})

    def _reply(self, status: int, body: dict[str, Any]) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(json.dumps(body, ensure_ascii=False))


def make_app(api_key: str = DEFAULT_API_KEY) -> tornado.web.Application:
    sent: list[dict[str, Any]] = []
    return tornado.web.Application(
        [(r"/messages", MessagesHandler, {"api_key": api_key, "sent": sent})]
    )


async def serve(
    host: str, port: int, data_dir: str | None = None, api_key: str = DEFAULT_API_KEY
) -> None:
    server = make_app(api_key).listen(port, address=host)
    try:
        await asyncio.Event().wait()
    finally:
        server.stop()


def main() -> None:
    p = argparse.ArgumentParser(description="Run the SMS gateway simulator.")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--api-key", default=DEFAULT_API_KEY)
    a = p.parse_args()
    loops.run(serve(a.host, a.port, api_key=a.api_key))


if __name__ == "__main__":
    main()
