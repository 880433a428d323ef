"""Benchmark: complete payments per second through the real stack, next to a raw asyncpg
insert rate measured in the same run on the same PostgreSQL.

A complete payment: the merchant creates the order, the citizen pays it (WeChat Pay and Alipay
alternately), the simulator confirms and calls back, the server verifies the callback, posts
to the ledger and enqueues the merchant notification. The clock stops when every order is
``paid`` in the database. Callback acknowledgement latency comes from the server's own
``/metrics`` histogram (route ``/api/v1/payments/notify/{channel}``).

Run: ``python bench/payments.py [--orders 600] [--concurrency 32] [--workers 2]
[--event-loop auto|uvloop|asyncio]``. Uses the embedded PostgreSQL and Redis (or
``SUPERAPP_DATABASE_URL`` / ``SUPERAPP_REDIS_URL``).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import multiprocessing
import os
import re
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from payments.channels.credentials import ensure_channel_credentials  # noqa: E402
from server import loops  # noqa: E402
from server.embedded import EmbeddedPostgres, EmbeddedRedis  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not come up")


async def raw_insert_rate(db_url: str, n: int, concurrency: int) -> float:
    pool = await asyncpg.create_pool(db_url, min_size=concurrency, max_size=concurrency)
    await pool.execute(
        "CREATE TABLE IF NOT EXISTS bench_raw (id text PRIMARY KEY, amount bigint, at timestamptz)"
    )
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(n):
        queue.put_nowait(i)

    async def worker() -> None:
        while not queue.empty():
            queue.get_nowait()
            await pool.execute(
                "INSERT INTO bench_raw VALUES ($1, $2, now())", secrets.token_hex(12), 100
            )

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    await pool.execute("DROP TABLE bench_raw")
    await pool.close()
    return n / elapsed


def _procs() -> list[tuple[int, int, str, float]]:
    """(pid, ppid, cmdline, cpu seconds) of every process."""
    tick = os.sysconf("SC_CLK_TCK")
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        out.append(
            (int(entry.name), int(fields[1]), cmd, (int(fields[11]) + int(fields[12])) / tick)
        )
    return out


def cpu_by_part(tmp: Path, server_pid: int) -> dict[str, float]:
    """CPU seconds used so far by each part of this run (not by other users of the box)."""
    procs = _procs()
    children: dict[int, list[int]] = {}
    for pid, ppid, _, _ in procs:
        children.setdefault(ppid, []).append(pid)

    def tree(root: int) -> set[int]:
        found, todo = set(), [root]
        while todo:
            pid = todo.pop()
            found.add(pid)
            todo.extend(children.get(pid, []))
        return found

    server = tree(server_pid)
    postmasters = [p for p, _, cmd, _ in procs if "postgres" in cmd and str(tmp) in cmd]
    pg = set().union(*(tree(p) for p in postmasters)) if postmasters else set()
    parts = {
        "server_workers": 0.0,
        "simulators": 0.0,
        "postgres": 0.0,
        "redis": 0.0,
        "bench_client": 0.0,
    }
    for pid, _, cmd, cpu in procs:
        if pid in server:
            parts["server_workers"] += cpu
        elif "server.sims." in cmd:
            parts["simulators"] += cpu
        elif pid in pg:
            parts["postgres"] += cpu
        elif "redis-server" in cmd and str(tmp) in cmd:
            parts["redis"] += cpu
        elif pid == os.getpid():
            parts["bench_client"] += cpu
    return parts


def p99_from_metrics(text: str, route: str) -> tuple[float | None, int]:
    buckets: dict[float, float] = {}
    for line in text.splitlines():
        if not line.startswith("superapp_http_request_duration_seconds_bucket"):
            continue
        if f'route="{route}"' not in line or 'method="POST"' not in line:
            continue
        le = re.search(r'le="([^"]+)"', line)
        if le is None:
            continue
        bound = float("inf") if le.group(1) == "+Inf" else float(le.group(1))
        buckets[bound] = buckets.get(bound, 0.0) + float(line.rsplit(" ", 1)[1])
    if not buckets:
        return None, 0
    total = buckets[float("inf")]
    for bound in sorted(buckets):
        if buckets[bound] >= 0.99 * total:
            return bound, int(total)
    return None, int(total)


_CONTENT_LENGTH = re.compile(rb"(?i)\r\ncontent-length:\s*(\d+)")


class RawHttp:
    """One keep-alive HTTP/1.1 connection framed by hand: far cheaper than httpx.

    The client is not the system under test; it shares the two cores with it.
    """

    def __init__(self, base: str) -> None:
        parts = urlsplit(base)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(
        self, path: str, payload: dict[str, Any], headers: str = ""
    ) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        body = json.dumps(payload).encode()
        self.writer.write(
            b"POST %s HTTP/1.1\r\nHost: %s\r\n%sContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s"
            % (path.encode(), self.host.encode(), headers.encode(), len(body), body)
        )
        head = await self.reader.readuntil(b"\r\n\r\n")
        length = _CONTENT_LENGTH.search(head)
        data = await self.reader.readexactly(int(length.group(1)) if length else 0)
        return int(head[9:12]), data

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _client(
    url: str, sims: dict[str, str], merchant: str, citizen: str, run: str, n: int,
    concurrency: int, receiver: str, out: Any,
) -> None:  # fmt: skip
    """The load generator (a child process): n payments, every step over real HTTP."""
    merchant_auth = f"Authorization: Bearer {merchant}\r\n"
    citizen_auth = f"Authorization: Bearer {citizen}\r\n"

    async def one(api: RawHttp, sim: dict[str, RawHttp], i: int) -> None:
        body = {
            "out_trade_no": f"b{run}-{i}",
            "amount_fen": 100 + i % 1000,
            "subject": "Bench fee",
            "notify_url": receiver,
        }
        status, data = await api.post(
            "/api/v1/payments/orders", body, merchant_auth + f"Idempotency-Key: {run}{i}\r\n"
        )
        assert status == 201, data
        order_id = json.loads(data)["id"]
        channel = "wechatpay" if i % 2 else "alipay"
        status, data = await api.post(
            f"/api/v1/payments/orders/{order_id}/pay", {"channel": channel}, citizen_auth
        )
        assert status == 200, data
        paid = json.loads(data)
        confirm = {"reference": paid["reference"]}
        if channel == "alipay":
            confirm["order_string"] = paid["client_params"]["order_string"]
        status, data = await sim[channel].post("/sim/confirm", confirm)
        assert status == 200, data

    async def main() -> float:
        todo = list(reversed(range(n)))

        async def worker() -> None:
            api = RawHttp(url)
            sim = {name: RawHttp(base) for name, base in sims.items()}
            try:
                while todo:
                    await one(api, sim, todo.pop())
            finally:
                for c in (api, *sim.values()):
                    await c.close()

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - started

    elapsed = asyncio.run(main())
    out.put((elapsed, time.process_time()))


async def run_payments(
    url: str, sims: dict[str, str], merchant: str, citizen: str, n: int, concurrency: int,
    db_url: str, receiver: str,
) -> tuple[float, float]:  # fmt: skip
    """(complete payments per second, CPU seconds of the load generator)."""
    run = secrets.token_hex(4)
    ctx = multiprocessing.get_context("spawn")
    q = ctx.Queue()
    proc = ctx.Process(
        target=_client, args=(url, sims, merchant, citizen, run, n, concurrency, receiver, q)
    )
    conn = await asyncpg.connect(db_url)
    started = time.perf_counter()
    proc.start()
    while q.empty():
        if not proc.is_alive():
            raise SystemExit(f"the load generator failed (exit {proc.exitcode})")
        await asyncio.sleep(0.02)
    _, client_cpu = q.get()
    proc.join()
    while True:
        paid = await conn.fetchval(
            "SELECT count(*) FROM pay_orders WHERE out_trade_no LIKE $1 AND status = 'paid'",
            f"b{run}-%",
        )
        if paid >= n:
            break
        await asyncio.sleep(0.02)
    elapsed = time.perf_counter() - started
    events = await conn.fetchval(
        """SELECT count(*) FROM pay_events e JOIN pay_orders o ON o.id = e.order_id
            WHERE o.out_trade_no LIKE $1 AND e.type = 'payment.succeeded'""",
        f"b{run}-%",
    )
    attempted = await conn.fetchval(
        """SELECT count(*) FROM pay_events e JOIN pay_orders o ON o.id = e.order_id
            WHERE o.out_trade_no LIKE $1 AND e.attempts > 0 AND e.last_error IS NOT NULL""",
        f"b{run}-%",
    )
    await conn.close()
    assert events == n, f"{events} notifications enqueued for {n} payments"
    print(f"webhook events already attempted (receiver refuses): {attempted} of {n}")
    return n / elapsed, client_cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--orders", type=int, default=600)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument(
        "--event-loop",
        choices=loops.CHOICES,
        default="auto",
        help="SUPERAPP_EVENT_LOOP for the server and the simulators (default: auto = uvloop)",
    )
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="superapp-bench-"))
    started: list[Any] = []
    db_url = os.environ.get("SUPERAPP_DATABASE_URL")
    if not db_url:
        pg = EmbeddedPostgres(tmp / "pg")
        pg.start()
        started.append(pg)
        db_url = pg.url
    redis_url = os.environ.get("SUPERAPP_REDIS_URL")
    if not redis_url:
        rd = EmbeddedRedis(tmp / "redis")
        rd.start()
        started.append(rd)
        redis_url = rd.url
    procs: list[subprocess.Popen[bytes]] = []
    try:
        sims: dict[str, str] = {}
        for name in ("wechatpay", "alipay"):
            data = tmp / "data" / "sims" / name
            ensure_channel_credentials(data)
            port = free_port()
            procs.append(
                subprocess.Popen(  # noqa: S603
                    [
                        sys.executable,
                        "-m",
                        f"server.sims.{name}",
                        "--port",
                        str(port),
                        "--data-dir",
                        str(data),
                        "--time-scale",
                        "0.001",
                    ],  # fmt: skip
                    cwd=ROOT,
                    env={**os.environ, "SUPERAPP_EVENT_LOOP": a.event_loop},
                )
            )
            sims[name] = f"http://127.0.0.1:{port}"
            wait_http(sims[name] + "/sim/trades")
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("SUPERAPP_")}
        env.update(
            SUPERAPP_DATABASE_URL=db_url,
            SUPERAPP_REDIS_URL=redis_url,
            SUPERAPP_MASTER_KEY=base64.b64encode(secrets.token_bytes(32)).decode(),
            SUPERAPP_DATA_DIR=str(tmp / "data"),
            SUPERAPP_PORT=str(port),
            SUPERAPP_WORKERS=str(a.workers),
            SUPERAPP_EVENT_LOOP=a.event_loop,
            SUPERAPP_SIMULATORS="false",
            SUPERAPP_LOG_LEVEL="WARNING",
            SUPERAPP_WECHATPAY_URL=sims["wechatpay"],
            SUPERAPP_ALIPAY_URL=sims["alipay"],
            SUPERAPP_OTP_PER_IP_PER_HOUR="1000000",
            SUPERAPP_TOKEN_PER_IP_PER_MINUTE="1000000",
        )
        cli = [sys.executable, "-m", "server.cli"]
        demo = subprocess.run(  # noqa: S603
            [*cli, "demo", "--json", "--quiet"], env=env, cwd=ROOT, capture_output=True, text=True
        )
        client = json.loads(demo.stdout)["clients"]["merchant"]
        procs.append(subprocess.Popen([*cli, "serve"], env=env, cwd=ROOT))  # noqa: S603
        url = f"http://127.0.0.1:{port}"
        wait_http(url + "/readyz")
        merchant = httpx.post(
            url + "/oauth2/token",
            data={"grant_type": "client_credentials"},
            auth=(client["client_id"], client["client_secret"]),
            timeout=60,
        ).json()["access_token"]
        phone = "+8613800000002"
        httpx.post(
            url + "/api/v1/identity/otp", json={"phone": phone}, timeout=60
        ).raise_for_status()
        out = subprocess.run(  # noqa: S603
            [*cli, "sms", "outbox", "--phone", phone], env=env, cwd=ROOT, capture_output=True,
            text=True,
        )  # fmt: skip
        code = re.search(r"\b(\d{6})\b", json.loads(out.stdout.strip().splitlines()[-1])["text"])
        assert code
        citizen = httpx.post(
            url + "/api/v1/identity/token",
            json={"grant_type": "otp", "phone": phone, "code": code.group(1)},
            timeout=60,
        ).json()["access_token"]
        receiver = "http://127.0.0.1:9/bench-merchant"  # enqueued; delivery is not timed

        raw = asyncio.run(raw_insert_rate(db_url, a.orders * 5, a.concurrency))
        # Warm-up, then the measured run. At the measured concurrency, so that every pooled
        # connection of every worker has prepared its statements and PostgreSQL has moved
        # them to generic plans (after five custom plans per connection): the steady state,
        # not the first minute after a start.
        warm = max(300, 10 * a.concurrency)
        asyncio.run(
            run_payments(url, sims, merchant, citizen, warm, a.concurrency, db_url, receiver)
        )
        server_pid = procs[-1].pid
        before = cpu_by_part(tmp, server_pid)
        rate, client_cpu = asyncio.run(
            run_payments(url, sims, merchant, citizen, a.orders, a.concurrency, db_url, receiver)
        )
        after = cpu_by_part(tmp, server_pid)
        after["bench_client"] += client_cpu  # the load generator has exited by now
        cpu_ms = {k: round((after[k] - before[k]) * 1000 / a.orders, 2) for k in after}
        p99, count = p99_from_metrics(
            httpx.get(url + "/metrics", timeout=60).text, "/api/v1/payments/notify/{channel}"
        )
        result = {
            "orders": a.orders,
            "concurrency": a.concurrency,
            "workers": a.workers,
            "event_loop": a.event_loop,
            "cpus": os.cpu_count(),
            "complete_payments_per_s": round(rate, 1),
            "raw_asyncpg_inserts_per_s": round(raw, 1),
            "ratio_payments_to_raw_inserts": round(rate / raw, 4),
            "callback_ack_p99_s_upper_bound": p99,
            "callbacks_observed": count,
            "cpu_ms_per_payment": cpu_ms,
            "load_average_1m": os.getloadavg()[0],
        }
        print(json.dumps(result, indent=2))
    finally:
        for p in procs:
            p.terminate()
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
        for s in reversed(started):
            s.stop()


if __name__ == "__main__":
    main()
