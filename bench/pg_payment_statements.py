"""Micro-benchmark: PostgreSQL CPU of each statement a payment runs, on one connection.

The payment's statements (create with an idempotency key, the order read, the move to
``paying`` with its hold, the callback's credit, and the outbox's claim and outcome) run
``--orders`` times each, phase after phase, on one connection of a fresh embedded
PostgreSQL. The backend's CPU is read from ``/proc`` before and after each phase, and the
whole server's (the WAL writer and the other background processes included) for the run.
This says where PostgreSQL's time goes; ``bench/payments.py`` says what it adds up to.

Run: ``python bench/pg_payment_statements.py [--orders 2000] [--rounds 3] [--sql STMT]``
(``--sql``: run after the migrations, e.g. to try an index). ``PERF_PHASE=credit`` records the
backend with ``perf`` during that phase into ``/tmp/perf-credit.data`` (``PERF_CG=dwarf`` for
call graphs of a binary built without frame pointers).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from identity.crypto import Vault  # noqa: E402
from identity.ids import new_id  # noqa: E402
from payments.domain import Order  # noqa: E402
from payments.ledger import Journal, Ledger, transfer  # noqa: E402
from payments.repository import PaymentsRepository  # noqa: E402
from payments.webhooks import DeliveryOutcome  # noqa: E402
from server.embedded import EmbeddedPostgres  # noqa: E402
from server.migrate import apply_migrations  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def cpu_of(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def cpu_of_tree(directory: Path) -> float:
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes()
            if b"postgres" in cmd and str(directory).encode() in cmd:
                total += cpu_of(int(entry.name))
            elif b"postgres:" in cmd:
                # Backends rename themselves; count those whose parent is our postmaster.
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                pcmd = Path(f"/proc/{ppid}/cmdline").read_bytes()
                if str(directory).encode() in pcmd:
                    total += cpu_of(int(entry.name))
        except (OSError, ValueError):
            continue
    return total


async def one_round(conn: asyncpg.Connection, repo: PaymentsRepository, n: int) -> dict[str, Any]:
    ledger = Ledger()
    merchant = "cli_bench"
    backend = await conn.fetchval("SELECT pg_backend_pid()")
    now = dt.datetime.now(dt.UTC)
    run = new_id("r")[-8:]
    orders = []
    for i in range(n):
        orders.append(
            Order(
                id=new_id("ord"),
                merchant_id=merchant,
                out_trade_no=f"{run}-{i}",
                amount_fen=100 + i % 1000,
                currency="CNY",
                subject="Bench fee",
                notify_url="http://127.0.0.1:9/hook",
                payer_sub=None,
                status="created",
                channel=None,
                channel_reference=None,
                transaction_id=None,
                refunded_fen=0,
                refunding_fen=0,
                expires_at=now + dt.timedelta(seconds=1800),
                paid_at=None,
                closed_at=None,
                created_at=now,
                updated_at=now,
            )  # fmt: skip
        )
    await ledger.ensure_account_codes(
        conn,
        [
            "pending_clearing",
            f"pending_payable:{merchant}",
            f"merchant_payable:{merchant}",
            "channel_clearing:wechatpay",
            "channel_clearing:alipay",
        ],
    )
    phases: dict[str, Any] = {}

    async def phase(name: str, body: Callable[[int, Order], Awaitable[None]]) -> None:
        perf = None
        if os.environ.get("PERF_PHASE") == name:
            perf = subprocess.Popen(  # noqa: S603, S607 - a diagnosis aid
                [
                    "perf",
                    "record",
                    "--call-graph",
                    os.environ.get("PERF_CG", "fp"),
                    "-p",
                    str(backend),
                    "-o",
                    f"/tmp/perf-{name}.data",
                ],
                stderr=subprocess.DEVNULL,
            )
            time.sleep(1)
        before = cpu_of(backend)
        started = time.perf_counter()
        for i, o in enumerate(orders):
            await body(i, o)
        if perf is not None:
            perf.send_signal(signal.SIGINT)
            perf.wait()
        phases[name] = (cpu_of(backend) - before) * 1000 / n
        phases[name + "_wall"] = (time.perf_counter() - started) * 1000 / n

    async def create(i: int, o: Order) -> None:
        got = await repo.insert_order_with_key(
            conn, o, f"{run}{i}", os.urandom(32), 201, {"id": o.id, "status": "created"}
        )
        assert got

    async def read(i: int, o: Order) -> None:
        assert await repo.get_order(conn, o.id) is not None

    async def pay(i: int, o: Order) -> None:
        channel = "wechatpay" if i % 2 else "alipay"
        hold = Journal(
            f"hold:{o.id}",
            "hold",
            transfer("pending_clearing", f"pending_payable:{merchant}", o.amount_fen),
            order_id=o.id,
        )
        t = dt.datetime.now(dt.UTC)
        done = await repo.start_paying(
            conn, o.id, payer_sub="usr_bench", channel=channel, channel_reference="ref" + o.id,
            now=t, next_check_at=t + dt.timedelta(seconds=30), hold=hold,
        )  # fmt: skip
        assert done is not None

    async def credit(i: int, o: Order) -> None:
        channel = "wechatpay" if i % 2 else "alipay"
        ok = await repo.credit_open_order(
            conn,
            order_id=o.id,
            channel=channel,
            transaction_id="tx" + o.id,
            amount_fen=o.amount_fen,
            paid_at=dt.datetime.now(dt.UTC),
            notification_id="n" + o.id,
            event_id=new_id("evt"),
            event_created_at="2026-12-05T00:00:00Z",
        )
        assert ok

    await phase("create", create)
    await phase("read", read)
    await phase("pay", pay)
    await phase("credit", credit)

    # The outbox: claimed in batches of 50 and each attempt's outcome recorded.
    before = cpu_of(backend)
    claimed = 0
    while claimed < n:
        events = await repo.claim_events(conn, dt.timedelta(seconds=60), 50)
        if not events:
            break
        claimed += len(events)
        later = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=15)
        await repo.record_deliveries(
            conn,
            [DeliveryOutcome(e.id, False, None, "refused", later) for e in events],
        )
    phases["outbox"] = (cpu_of(backend) - before) * 1000 / n
    plans = await conn.fetch(
        """SELECT left(regexp_replace(statement, '\\s+', ' ', 'g'), 60) AS s,
                  generic_plans, custom_plans FROM pg_prepared_statements"""
    )
    phases["plans"] = [(r["s"], r["generic_plans"], r["custom_plans"]) for r in plans]
    return phases


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--orders", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--sql", action="append", default=[], help="SQL run after the migrations")
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="superapp-pgmicro-"))
    pg = EmbeddedPostgres(tmp / "pg")
    pg.start()
    try:
        conn = await asyncpg.connect(pg.url)
        await apply_migrations(conn)
        for sql in a.sql:
            await conn.execute(sql)
        vault = Vault(base64.b64encode(os.urandom(32)).decode())
        repo = PaymentsRepository(vault)
        await conn.execute(
            """INSERT INTO pay_merchants (client_id, unit_id, name, webhook_secret)
               VALUES ('cli_bench', 'unit', 'Bench', '\\x00')"""
        )
        tree_before = cpu_of_tree(tmp)
        results = []
        for r in range(a.rounds):
            res = await one_round(conn, repo, a.orders)
            plans = res.pop("plans")
            results.append(res)
            print(json.dumps({"round": r, **{k: round(v, 3) for k, v in res.items()}}))
        tree = (cpu_of_tree(tmp) - tree_before) * 1000 / (a.orders * a.rounds)
        print(json.dumps({"postgres_tree_ms_per_payment": round(tree, 3)}))
        for p in plans:
            print(p)
        stats = await conn.fetch(
            """SELECT relname, n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables
                WHERE n_tup_upd > 0 ORDER BY relname"""
        )
        for s in stats:
            print(dict(s))
        await conn.close()
    finally:
        pg.stop()


if __name__ == "__main__":
    asyncio.run(main())
