"""Crash test: SIGKILL the whole server (supervisor and workers) several times during a burst
of payments whose callbacks the channel simulators duplicate, reorder and "time out". After
restarts and the channels' (time-scaled) retry schedules: every order is paid exactly once, no
money is lost, the trial balance is zero and reconciliation finds nothing unexplained."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from payments.channels.credentials import ensure_channel_credentials
from tests.conftest import _with_database
from tests.payments_support import BEIJING, ROOT
from tests.support import free_port

N_ORDERS = 40
KILLS = 3
PACE = 0.15  # seconds between the starts of two payments
RETRIES: list[str] = []  # requests that hit a dead server and were sent again


def _wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"process exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError("process did not listen in time")


class World:
    """A server (2 workers), both simulators with faults on, and a fresh database."""

    def __init__(self, tmp: Path, db_url: str, redis_url: str) -> None:
        self.tmp = tmp
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.sims: dict[str, str] = {}
        self.procs: list[subprocess.Popen[bytes]] = []
        self.server: subprocess.Popen[bytes] | None = None
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("SUPERAPP_")}
        self.env.update(
            SUPERAPP_DATABASE_URL=db_url,
            SUPERAPP_REDIS_URL=redis_url,
            SUPERAPP_MASTER_KEY=base64.b64encode(secrets.token_bytes(32)).decode(),
            SUPERAPP_DATA_DIR=str(tmp / "data"),
            SUPERAPP_PORT=str(self.port),
            SUPERAPP_WORKERS="2",
            SUPERAPP_SIMULATORS="false",
            SUPERAPP_LOG_LEVEL="WARNING",
            SUPERAPP_PAYMENTS_TIME_SCALE="0.001",
            SUPERAPP_PAYMENTS_TICK="0.1",
            SUPERAPP_PAYMENTS_POLL_INTERVAL="2",
            SUPERAPP_OTP_PER_IP_PER_HOUR="100000",
            SUPERAPP_TOKEN_PER_IP_PER_MINUTE="100000",
        )

    def start_sims(self) -> None:
        for name in ("wechatpay", "alipay"):
            data = self.tmp / "data" / "sims" / name
            ensure_channel_credentials(data)
            port = free_port()
            cmd = [sys.executable, "-m", f"server.sims.{name}", "--port", str(port)]
            cmd += ["--data-dir", str(data), "--time-scale", "0.001", "--seed", "7"]
            cmd += ["--duplicate", "0.5", "--reorder", "0.3", "--timeout", "0.2"]
            proc = subprocess.Popen(cmd, cwd=ROOT)  # noqa: S603
            self.procs.append(proc)
            _wait_port(port, proc)
            self.sims[name] = f"http://127.0.0.1:{port}"
        self.env["SUPERAPP_WECHATPAY_URL"] = self.sims["wechatpay"]
        self.env["SUPERAPP_ALIPAY_URL"] = self.sims["alipay"]

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(  # noqa: S603
            [sys.executable, "-m", "server.cli", *args],
            env=self.env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=180,
        )

    def start_server(self) -> None:
        self.server = subprocess.Popen(  # noqa: S603
            [sys.executable, "-m", "server.cli", "serve"],
            env=self.env,
            cwd=ROOT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError("server not ready")

    def kill_server(self) -> None:
        assert self.server is not None
        os.killpg(self.server.pid, signal.SIGKILL)  # supervisor and workers at once
        self.server.wait(10)

    def stop(self) -> None:
        if self.server is not None and self.server.poll() is None:
            os.killpg(self.server.pid, signal.SIGTERM)
            self.server.wait(30)
        for p in self.procs:
            p.terminate()
            p.wait(10)


@pytest.fixture
def world(tmp_path: Path, storage: dict[str, str]) -> Iterator[World]:
    name = "superapp_crash_" + secrets.token_hex(4)

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(storage["server_url"])
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    w = World(tmp_path, _with_database(storage["server_url"], name), storage["redis_url"])
    try:
        yield w
    finally:
        w.stop()
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _retry(call: Any, attempts: int = 200) -> httpx.Response:
    """What a merchant or app does when the server is down: try again (same idempotency)."""
    for _ in range(attempts):
        try:
            resp: httpx.Response = await call()
            if resp.status_code < 500 and resp.status_code != 409:
                return resp
        except httpx.HTTPError as exc:
            RETRIES.append(type(exc).__name__)
        await asyncio.sleep(0.2)
    raise AssertionError("the server never came back")


async def _burst(w: World, merchant: str, citizen: str) -> list[str]:
    ids: list[str] = []
    async with httpx.AsyncClient(base_url=w.url, timeout=10) as c, httpx.AsyncClient() as sim:

        async def one(i: int) -> None:
            # Paced over several seconds so the kills always land inside the burst,
            # however fast this machine serves it.
            await asyncio.sleep(i * PACE)
            body = {"out_trade_no": f"crash-{i}", "amount_fen": 100 + i, "subject": "Fine"}
            created = await _retry(
                lambda: c.post(
                    "/api/v1/payments/orders",
                    json=body,
                    headers={"Authorization": f"Bearer {merchant}", "Idempotency-Key": f"k{i}"},
                )
            )
            assert created.status_code == 201, created.text
            order_id = created.json()["id"]
            ids.append(order_id)
            channel = "wechatpay" if i % 2 else "alipay"
            pay = await _retry(
                lambda: c.post(
                    f"/api/v1/payments/orders/{order_id}/pay",
                    json={"channel": channel},
                    headers={"Authorization": f"Bearer {citizen}"},
                )
            )
            assert pay.status_code == 200, pay.text
            confirm = {"reference": pay.json()["reference"]}
            if channel == "alipay":
                confirm["order_string"] = pay.json()["client_params"]["order_string"]
            r = await sim.post(w.sims[channel] + "/sim/confirm", json=confirm)
            assert r.status_code == 200, r.text

        async def killer() -> None:
            await asyncio.sleep(1.0)
            for _ in range(KILLS):
                await asyncio.to_thread(w.kill_server)
                await asyncio.sleep(0.5)
                await asyncio.to_thread(w.start_server)
                await asyncio.sleep(1.0)

        tasks = [one(i) for i in range(N_ORDERS)]
        await asyncio.gather(killer(), *tasks)
    return ids


def _token(w: World, phone: str) -> str:
    assert httpx.post(w.url + "/api/v1/identity/otp", json={"phone": phone}).status_code == 202
    out = w.cli("sms", "outbox", "--phone", phone)
    code = re.search(r"\b(\d{6})\b", json.loads(out.stdout.strip().splitlines()[-1])["text"])
    assert code
    resp = httpx.post(
        w.url + "/api/v1/identity/token",
        json={"grant_type": "otp", "phone": phone, "code": code.group(1)},
    )
    return str(resp.json()["access_token"])


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_sigkill_during_a_burst_loses_nothing(world: World) -> None:
    w = world
    w.start_sims()
    demo = w.cli("demo", "--json", "--quiet")
    assert demo.returncode == 0, demo.stderr
    client = json.loads(demo.stdout)["clients"]["merchant"]
    w.start_server()
    merchant = httpx.post(
        w.url + "/oauth2/token",
        data={"grant_type": "client_credentials"},
        auth=(client["client_id"], client["client_secret"]),
    ).json()["access_token"]
    citizen = _token(w, "+8613800000002")

    ids = asyncio.run(_burst(w, merchant, citizen))
    assert len(set(ids)) == N_ORDERS
    assert RETRIES, "no request met a killed server: the kills missed the burst"

    async def settled() -> list[dict[str, Any]]:
        async with httpx.AsyncClient(base_url=w.url) as c:
            deadline = time.monotonic() + 240
            while True:
                orders = []
                for order_id in ids:
                    r = await c.get(
                        f"/api/v1/payments/orders/{order_id}",
                        headers={"Authorization": f"Bearer {merchant}"},
                    )
                    orders.append(r.json())
                if all(o["status"] == "paid" for o in orders) or time.monotonic() > deadline:
                    return orders
                await asyncio.sleep(1)

    orders = asyncio.run(settled())
    assert [o["id"] for o in orders if o["status"] != "paid"] == []

    async def books() -> tuple[int, int, int]:
        conn = await asyncpg.connect(w.env["SUPERAPP_DATABASE_URL"])
        try:
            per_order = await conn.fetch(
                """SELECT order_id, count(*) AS n FROM ledger_transactions
                    WHERE kind IN ('payment', 'stray') GROUP BY order_id"""
            )
            clearing = await conn.fetchval(
                """SELECT COALESCE(sum(amount_fen), 0) FROM ledger_entries
                    WHERE account_code LIKE 'channel_clearing:%'"""
            )
            events = await conn.fetchval(
                "SELECT count(DISTINCT order_id) FROM pay_events WHERE type = 'payment.succeeded'"
            )
        finally:
            await conn.close()
        assert all(r["n"] == 1 for r in per_order), per_order  # no order paid twice
        return len(per_order), int(clearing), int(events)

    paid, clearing, _ = asyncio.run(books())
    assert paid == N_ORDERS
    assert clearing == sum(100 + i for i in range(N_ORDERS))  # no money lost or doubled

    tb = w.cli("payments", "trial-balance")
    assert tb.returncode == 0 and json.loads(tb.stdout)["balanced"], tb.stdout
    today = dt.datetime.now(BEIJING).date().isoformat()
    rec = w.cli("payments", "reconcile", "--date", today)
    report = json.loads(rec.stdout)
    assert rec.returncode == 0 and report["unexplained"] == 0, report
