"""Payments test support: both channel simulators as real processes, a merchant with a
client-credentials token, a tiny webhook receiver, and helpers to play the citizen.

The simulators run once per test session (shared by ``tests/api/payments`` and
``tests/e2e``), at time scale 0.001, with the server's own credentials directory. The
session's ``PaymentService`` is pointed at them and its background loop is started.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import tornado.httpserver
import tornado.netutil
import tornado.web

from payments.channels import wechatpay_signing as signing
from payments.channels.credentials import load_wechatpay_platform
from server.bootstrap import Services
from server.payments_wiring import build_channels, credentials_dir, ensure_credentials
from tests.support import Api

ROOT = Path(__file__).resolve().parents[1]
BEIJING = dt.timezone(dt.timedelta(hours=8))
T = TypeVar("T")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(module: str, data_dir: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    cmd = [sys.executable, "-m", module, "--port", str(port), "--data-dir", str(data_dir)]
    proc = subprocess.Popen([*cmd, "--time-scale", "0.001"], cwd=ROOT)  # noqa: S603
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, f"http://127.0.0.1:{port}"
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise RuntimeError(f"{module} did not start") from None
            time.sleep(0.05)


@dataclass
class Sims:
    wechatpay: str
    alipay: str
    procs: list[subprocess.Popen[bytes]]
    task: asyncio.Task[None] | None = None
    users: int = 0


_SIMS: dict[str, Sims] = {}


async def start_payments(services: Services) -> Sims:
    """Start the simulators once per session and point the payments service at them."""
    if "sims" in _SIMS:
        _SIMS["sims"].users += 1
        return _SIMS["sims"]
    settings = services.settings
    ensure_credentials(settings)
    wx_proc, wx = _start("server.sims.wechatpay", credentials_dir(settings, "wechatpay"))
    ali_proc, ali = _start("server.sims.alipay", credentials_dir(settings, "alipay"))
    svc = services.payments
    svc.channels = build_channels(settings, svc.http, wechatpay_url=wx, alipay_url=ali)
    svc.poll_interval = dt.timedelta(seconds=0.3)
    worker = services.payments_worker
    worker.tick, worker.poll_interval = 0.05, dt.timedelta(seconds=0.3)
    worker.dispatcher.time_scale = 0.0001
    sims = Sims(wx, ali, [wx_proc, ali_proc], asyncio.create_task(worker.run()), 1)
    _SIMS["sims"] = sims
    return sims


async def stop_payments() -> None:
    sims = _SIMS.get("sims")
    if sims is None:
        return
    sims.users -= 1
    if sims.users > 0:
        return
    _SIMS.pop("sims")
    if sims.task is not None:
        sims.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sims.task
    for proc in sims.procs:
        proc.terminate()
        proc.wait(timeout=10)


@dataclass
class Merchant:
    client_id: str
    unit_id: str
    token: str
    webhook_secret: str


async def new_merchant(api: Api) -> Merchant:
    services = api.services
    unit_id = await api.unit()
    client, _ = await services.clients.create(unit_id=unit_id, name="Test merchant " + unit_id)
    token = services.clients.issue_client_token(client, [])
    resp = await api.get("/api/v1/payments/merchant", token=token)
    assert resp.status_code == 200, resp.text
    return Merchant(client.client_id, unit_id, token, resp.json()["webhook_secret"])


@dataclass
class Hook:
    headers: dict[str, str]
    body: bytes

    @property
    def event(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.body)
        return data


@dataclass
class Receiver:
    """The merchant's server: records every webhook; answers ``status`` (200 by default)."""

    url: str = ""
    hooks: list[Hook] = field(default_factory=list)
    status: int = 200
    server: tornado.httpserver.HTTPServer | None = None

    def start(self) -> None:
        receiver = self

        class Handler(tornado.web.RequestHandler):
            def post(self) -> None:
                receiver.hooks.append(Hook(dict(self.request.headers.get_all()), self.request.body))
                self.set_status(receiver.status)
                self.finish("ok")

        sockets = tornado.netutil.bind_sockets(0, "127.0.0.1", family=socket.AF_INET)
        app = tornado.web.Application([(r"/hook", Handler)], log_function=lambda _h: None)
        self.server = tornado.httpserver.HTTPServer(app)
        self.server.add_sockets(sockets)
        self.url = f"http://127.0.0.1:{sockets[0].getsockname()[1]}/hook"

    def events(self, order_id: str, type_: str | None = None) -> list[Hook]:
        return [
            h
            for h in self.hooks
            if h.event["data"]["order"]["id"] == order_id
            and (type_ is None or h.event["type"] == type_)
        ]

    async def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            await self.server.close_all_connections()


async def eventually(check: Callable[[], Awaitable[T | None]], timeout: float = 20.0) -> T:
    """Wait until ``check`` returns something truthy (a wait, not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s; last value {value!r}")
        await asyncio.sleep(0.05)


async def create_order(
    api: Api, merchant: Merchant, amount: int = 1234, **extra: Any
) -> dict[str, Any]:
    body = {
        "out_trade_no": "T" + secrets.token_hex(8),
        "amount_fen": amount,
        "subject": "Traffic fine",
        **extra,
    }
    resp = await api.post(
        "/api/v1/payments/orders",
        json=body,
        token=merchant.token,
        headers={"Idempotency-Key": secrets.token_hex(12)},
    )
    assert resp.status_code == 201, resp.text
    data: dict[str, Any] = resp.json()
    return data


async def pay_and_confirm(
    api: Api, sims: Sims, citizen_token: str, order_id: str, channel: str
) -> dict[str, Any]:
    """The citizen pays: our API gives the SDK parameters, the simulator plays the app."""
    resp = await api.post(
        f"/api/v1/payments/orders/{order_id}/pay", json={"channel": channel}, token=citizen_token
    )
    assert resp.status_code == 200, resp.text
    pay: dict[str, Any] = resp.json()
    base = sims.wechatpay if channel == "wechatpay" else sims.alipay
    body = {"reference": pay["reference"]}
    if channel == "alipay":
        body["order_string"] = pay["client_params"]["order_string"]
    async with httpx.AsyncClient() as c:
        confirm = await c.post(base + "/sim/confirm", json=body)
    assert confirm.status_code == 200, confirm.text
    return pay


async def order_status(api: Api, merchant: Merchant, order_id: str) -> dict[str, Any]:
    resp = await api.get(f"/api/v1/payments/orders/{order_id}", token=merchant.token)
    assert resp.status_code == 200, resp.text
    data: dict[str, Any] = resp.json()
    return data


def wechat_notification(
    services: Services, transaction: dict[str, Any], *, event_id: str | None = None,
    now: dt.datetime | None = None,
) -> tuple[dict[str, str], bytes]:  # fmt: skip
    """A WeChat Pay v3 payment callback signed and encrypted as the platform would."""
    creds = load_wechatpay_platform(credentials_dir(services.settings, "wechatpay"))
    resource = signing.encrypt_resource(
        creds.apiv3_key, json.dumps(transaction).encode(), "transaction", "transaction"
    )
    envelope = {
        "id": event_id or "EV-" + secrets.token_hex(12),
        "create_time": (now or dt.datetime.now(dt.UTC)).astimezone(BEIJING).isoformat(),
        "resource_type": "encrypt-resource",
        "event_type": "TRANSACTION.SUCCESS",
        "summary": "支付成功",
        "resource": resource,
    }
    body = json.dumps(envelope).encode()
    headers = signing.signed_headers(creds.private_key, creds.serial_no, body, now)
    return {**headers, "Content-Type": "application/json"}, body


def wechat_transaction(
    services: Services, out_trade_no: str, total: int, transaction_id: str | None = None
) -> dict[str, Any]:
    creds = load_wechatpay_platform(credentials_dir(services.settings, "wechatpay"))
    return {
        "appid": creds.appid,
        "mchid": creds.mchid,
        "out_trade_no": out_trade_no,
        "transaction_id": transaction_id or "42000" + secrets.token_hex(10),
        "trade_type": "APP",
        "trade_state": "SUCCESS",
        "trade_state_desc": "支付成功",
        "success_time": dt.datetime.now(BEIJING).replace(microsecond=0).isoformat(),
        "payer": {"openid": "o" + secrets.token_hex(8)},
        "amount": {
            "total": total,
            "payer_total": total,
            "currency": "CNY",
            "payer_currency": "CNY",
        },
    }
