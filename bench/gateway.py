"""Gateway benchmark: ratios against references measured in the same run.

Runs, one process each, on this machine:

* upstream: nginx answering ``return 200`` (Debian's nginx-light), so the
  gateway and not the upstream is the bottleneck;
* ``bare``: a bare Tornado handler (the ceiling of one Python process);
* ``gateway``: one superapp worker proxying ``/m/{app}/`` to the upstream
  (token check, gray choice, rate limit in Redis, identity assertion, pooled
  keep-alive client);
* ``nginx-proxy``: nginx ``proxy_pass`` to the same upstream (the reference in C).

Throughput with ``wrk`` (1 thread, 32 connections), with the CPU seconds each
Python process spent per request (from ``/proc``: far less disturbed by other
load on the machine than the rates); added latency at a moderate load with one
sequential keep-alive client (gateway minus direct upstream).

The 10,000-apps comparison runs a second gateway worker on a second database
holding the same app plus 10,000 more, and measures the two alternately
(``--rounds`` times each, interleaved so that a burst of other load hits both
alike); it reports the median rate and CPU per request of each. The catalog
search p95 is measured on the one with 10,000 apps.

With ``--baseline DIR`` (another checkout of this repository, e.g. a
``git worktree`` of the previous commit) a gateway worker running that code is
measured alternately with this one, ``--rounds`` times each on the same
database: the steadiest way to see what a change did on a shared machine.

Needs PostgreSQL and Redis: ``SUPERAPP_BENCH_DATABASE_URL`` (a server; a
throwaway database is created and dropped) and ``SUPERAPP_BENCH_REDIS_URL``.
Run: ``python bench/gateway.py [--seconds 10] [--rounds 5] [--baseline DIR]``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import re
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from server import loops  # noqa: E402

NGINX_CONF = """
worker_processes 1;
error_log {dir}/error.log crit;
pid {dir}/nginx.pid;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    keepalive_requests 1000000;
    upstream up {{ server 127.0.0.1:{up}; keepalive 64; }}
    server {{ listen 127.0.0.1:{up}; location / {{ return 200 "ok"; }} }}
    server {{
        listen 127.0.0.1:{proxy};
        location / {{
            proxy_pass http://up;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
"""

BARE = """
import asyncio, sys, tornado.web
from server import loops  # the gateway's loop (SUPERAPP_EVENT_LOOP): compare code, not loops
class H(tornado.web.RequestHandler):
    def get(self, *_):
        self.write("ok")
async def main():
    tornado.web.Application([(r"/.*", H)]).listen(int(sys.argv[1]), "127.0.0.1")
    await asyncio.Event().wait()
loops.run(main())
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing on port {port}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of one process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk(
    url: str, seconds: int, headers: dict[str, str] | None = None, pid: int | None = None
) -> tuple[float, float]:
    """Requests per second and, with ``pid``, that process's CPU ms per request."""
    cmd = ["wrk", "-t1", "-c32", f"-d{seconds}s", url]
    for k, v in (headers or {}).items():
        cmd += ["-H", f"{k}: {v}"]
    before = cpu_seconds(pid) if pid else 0.0
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout  # noqa: S603
    used = cpu_seconds(pid) - before if pid else 0.0
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        raise RuntimeError(f"{url}: {non2xx.group(1)} failed responses\n{out}")
    count = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    return rate, used * 1000 / max(count, 1)


def latencies(url: str, n: int, headers: dict[str, str] | None = None) -> list[float]:
    out = []
    with httpx.Client(headers=headers, timeout=10) as client:
        for _ in range(50):
            client.get(url)
        for _ in range(n):
            t0 = time.perf_counter()
            r = client.get(url)
            out.append((time.perf_counter() - t0) * 1000)
            assert r.status_code == 200, r.text
    return sorted(out)


def pct(values: list[float], p: float) -> float:
    return values[min(len(values) - 1, int(len(values) * p))]


async def setup(
    db_url: str, redis_url: str, master_key: str, upstream: str, port: int
) -> dict[str, Any]:
    """Migrate, create a unit, staff and an app released to everyone; a citizen token."""
    from identity.tokens import Principal
    from server.bootstrap import build, prepare_database
    from server.settings import Settings

    settings = Settings(
        database_url=db_url,
        redis_url=redis_url,
        master_key=master_key,
        port=port,  # the issuer the gateway worker expects in tokens
        upstream_allow_cidrs=("127.0.0.0/8",),
        simulators=False,
    )
    await prepare_database(settings)
    svc = await build(settings)
    try:
        unit, _ = await svc.orgs.upsert_unit(
            code="bench", name_zh="基准测试局", name_en="Bench", kind="municipal",
            district_code="440300",
        )  # fmt: skip
        admin, _ = await svc.orgs.grant("+8613900000001", "unit-admin", unit.id, granted_by=None)
        reviewer, _ = await svc.orgs.grant("+8613900000002", "reviewer", None, granted_by=None)
        citizen, _ = await svc.orgs.grant("+8613900000003", "developer", unit.id, granted_by=None)
        a = Principal(sub=admin.id, kind="user", acr=1)
        r = Principal(sub=reviewer.id, kind="user", acr=1)
        manifest = {
            "name_zh": "基准应用", "name_en": "Bench app", "category": "community",
            "upstream": upstream, "contact": {"phone": "12345"},
            "rate_limit": {"app": {"count": 1_000_000, "period": 1, "burst": 1_000_000},
                           "citizen": {"count": 1_000_000, "period": 1, "burst": 1_000_000}},
        }  # fmt: skip
        app, _ = await svc.miniapps.register(a, unit.id, manifest)
        await svc.orgs.grant("+8613900000001", "developer", unit.id, granted_by=None)
        await svc.miniapps.submit(a, app.app_id, "1.0.0")
        await svc.miniapps.review(r, app.app_id, "1.0.0", "approve", "ok")
        await svc.miniapps.release(a, app.app_id, "1.0.0", 100, None)
        token = svc.tokens.issue_access(sub=citizen.id, sid="ses_bench", acr=2, roles=[])
        return {"app_id": app.app_id, "token": token}
    finally:
        await svc.close()


async def register_many(db_url: str, redis_url: str, master_key: str, upstream: str) -> int:
    """Bulk-register the demo catalog (8,606) plus copies up to 10,000 more apps."""
    from server.bootstrap import build
    from server.demo import miniapps as demo
    from server.demo.miniapp_catalog import generate
    from server.demo.shenzhen_units import UNITS
    from server.settings import Settings

    settings = Settings(database_url=db_url, redis_url=redis_url, master_key=master_key)
    svc = await build(settings)
    try:
        units = {}
        for u in UNITS:
            unit, _ = await svc.orgs.upsert_unit(
                code=u.code, name_zh=u.name_zh, name_en=u.name_en, kind=u.kind,
                district_code=u.district_code,
            )  # fmt: skip
            units[u.code] = unit.id
        names = {
            r["id"]: r["name_zh"] for r in await svc.pool.fetch("SELECT id, name_zh FROM units")
        }
        catalog = generate()
        extra = [
            m.__class__(**{**{f: getattr(m, f) for f in m.__slots__},
                           "app_id": m.app_id[:-4] + "x" + f"{i:03d}", "name_zh": m.name_zh + "二"})
            for i, m in enumerate(catalog[: 10_000 - len(catalog)])
        ]  # fmt: skip
        rows = [
            demo._row(m, units[m.unit_code], names[units[m.unit_code]], upstream)
            for m in catalog + extra
        ]
        async with svc.pool.acquire() as conn, conn.transaction():
            await demo._load(conn, rows)
        return len(rows)
    finally:
        await svc.close()


async def serve_gateway(args: argparse.Namespace) -> None:
    if args.root:  # the code of another checkout (--baseline): found before ours
        sys.path.insert(0, args.root)
    from server.process import run_worker
    from server.settings import Settings

    settings = Settings(
        database_url=args.db, redis_url=args.redis, master_key=args.key, port=args.port,
        upstream_allow_cidrs=("127.0.0.0/8",), simulators=False, workers=1, log_level="WARNING",
    )  # fmt: skip
    import logging

    logging.basicConfig(level=logging.WARNING)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.bind_port or args.port))
    sock.listen(1024)
    sock.setblocking(False)
    await run_worker(settings, [sock], 0)


def catalog_p95(base: str, rounds: int = 10) -> tuple[float, float]:
    queries = ("公积金 gjj 社保 sb 交通违法 预约挂号 南山 fee school 派出所 "
               "深圳 服务 电费 人民医院 rmyy 学位 停车 z 税").split()  # fmt: skip
    times = []
    with httpx.Client(base_url=base, timeout=10) as c:
        for q in queries:
            c.get("/api/v1/catalog", params={"q": q})
        for _ in range(rounds):
            for q in queries:
                t0 = time.perf_counter()
                r = c.get("/api/v1/catalog", params={"q": q})
                times.append((time.perf_counter() - t0) * 1000)
                assert r.status_code == 200
    times.sort()
    return pct(times, 0.5), pct(times, 0.95)


def compare_baseline(
    args: argparse.Namespace,
    current: tuple[subprocess.Popen[bytes], str],
    baseline: tuple[subprocess.Popen[bytes], str],
    auth: dict[str, str],
) -> None:
    """This checkout's worker and the baseline's, alternately on the same database."""
    httpx.get(baseline[1], headers=auth).raise_for_status()
    runs: dict[str, list[tuple[float, float]]] = {"this checkout": [], "baseline": []}
    for _ in range(args.rounds):
        for name, (proc, url) in (("this checkout", current), ("baseline", baseline)):
            runs[name].append(wrk(url, args.seconds, auth, proc.pid))
    print(f"\nagainst {args.baseline}, {args.rounds} interleaved runs each (median):")
    medians = {}
    for name, side in runs.items():
        rate, cpu = statistics.median(r for r, _ in side), statistics.median(c for _, c in side)
        medians[name] = (rate, cpu)
        print(f"  {name:<14} {rate:>8,.0f}/s  {cpu:.3f} ms CPU per request")
    (r0, c0), (r1, c1) = medians["this checkout"], medians["baseline"]
    print(f"  this checkout vs baseline: rate {(r0 - r1) / r1:+.1%}, CPU {(c0 - c1) / c1:+.1%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5, help="interleaved runs per side")
    parser.add_argument("--serve-gateway", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--db"), parser.add_argument("--redis"), parser.add_argument("--key")
    parser.add_argument("--baseline", help="another checkout to compare with, interleaved")
    parser.add_argument("--port", type=int)
    parser.add_argument("--bind-port", type=int), parser.add_argument("--root")
    args = parser.parse_args()
    if args.serve_gateway:
        loops.run(serve_gateway(args))
        return
    server_url = os.environ.get(
        "SUPERAPP_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
    )
    redis_url = os.environ.get("SUPERAPP_BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")
    suffix = secrets.token_hex(4)
    dbnames = [f"superapp_bench_{suffix}", f"superapp_bench_{suffix}_10k"]
    db_urls = [re.sub(r"/[^/]*$", "/" + name, server_url) for name in dbnames]
    key = base64.b64encode(secrets.token_bytes(32)).decode()
    tmp = Path(tempfile.mkdtemp(prefix="bench-gw-"))
    up, proxy, bare = free_port(), free_port(), free_port()
    ports = [free_port(), free_port()]  # the gateway with one app, the one with 10,000 more
    procs: list[subprocess.Popen[bytes]] = []
    upstream = f"http://127.0.0.1:{up}/"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(server_url)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    def start_gateway(
        db_url: str, port: int, bind: int | None = None, root: str | None = None
    ) -> subprocess.Popen[bytes]:
        """A gateway worker; ``port`` names it in tokens, ``bind`` is where it listens."""
        extra = ["--bind-port", str(bind), "--root", str(root)] if bind and root else []
        p = subprocess.Popen(  # noqa: S603
            [sys.executable, __file__, "--serve-gateway", "--db", db_url, "--redis", redis_url,
             "--key", key, "--port", str(port), *extra], cwd=root or ROOT,
        )  # fmt: skip
        procs.append(p)
        wait_port(bind or port)
        return p

    try:
        (tmp / "nginx.conf").write_text(NGINX_CONF.format(dir=tmp, up=up, proxy=proxy))
        procs.append(
            subprocess.Popen(["nginx", "-c", str(tmp / "nginx.conf"), "-g", "daemon off;"])
        )  # noqa: S603, S607
        bare_proc = subprocess.Popen([sys.executable, "-c", BARE, str(bare)], cwd=ROOT)  # noqa: S603
        procs.append(bare_proc)
        ctxs, urls, auths = [], [], []
        for name, db_url, port in zip(dbnames, db_urls, ports, strict=True):
            asyncio.run(admin(f'CREATE DATABASE "{name}"'))
            ctx = asyncio.run(setup(db_url, redis_url, key, upstream, port))
            ctxs.append(ctx)
            urls.append(f"http://127.0.0.1:{port}/m/{ctx['app_id']}/")
            auths.append({"Authorization": f"Bearer {ctx['token']}"})
        n = asyncio.run(register_many(db_urls[1], redis_url, key, upstream))
        gateways = [
            start_gateway(db_url, port) for db_url, port in zip(db_urls, ports, strict=True)
        ]
        wait_port(up), wait_port(proxy), wait_port(bare)
        for url, auth in zip(urls, auths, strict=True):
            httpx.get(url, headers=auth).raise_for_status()
        s = args.seconds
        # Warm-up under the same load, not counted: the upstream pool opens its 32
        # connections, caches fill, the interpreter specialises the hot paths.
        for url, auth in zip(urls, auths, strict=True):
            wrk(url, 2, auth)
        wrk(f"http://127.0.0.1:{bare}/", 2)
        gw_rate, gw_cpu = wrk(urls[0], s, auths[0], gateways[0].pid)
        bare_rate, bare_cpu = wrk(f"http://127.0.0.1:{bare}/", s, pid=bare_proc.pid)
        rates = {
            "upstream (nginx return 200)": wrk(f"http://127.0.0.1:{up}/", s)[0],
            "bare Tornado handler": bare_rate,
            "gateway (1 worker)": gw_rate,
            "nginx proxy_pass": wrk(f"http://127.0.0.1:{proxy}/", s)[0],
        }
        direct = latencies(f"http://127.0.0.1:{up}/", 2000)
        through = latencies(urls[0], 2000, auths[0])
        bare_lat = latencies(f"http://127.0.0.1:{bare}/", 2000)
        print(f"\nthroughput, wrk -t1 -c32 -d{s}s (requests/s):")
        for name, rate in rates.items():
            print(f"  {name:<30} {rate:>10,.0f}")
        ratio = rates["gateway (1 worker)"] / rates["bare Tornado handler"]
        print(f"  gateway / bare Tornado        {ratio:>10.2f}   (target >= 0.4)")
        vs_nginx = rates["gateway (1 worker)"] / rates["nginx proxy_pass"]
        print(f"  gateway / nginx proxy_pass    {vs_nginx:>10.2f}")
        print("CPU per request of the Python process (ms):")
        print(f"  gateway {gw_cpu:.3f}   bare Tornado {bare_cpu:.3f}", end="")
        print(f"   bare / gateway {bare_cpu / gw_cpu:.2f}")
        print("\nadded latency, one sequential keep-alive client, 2,000 requests (ms):")
        for p, target in ((0.5, 1.0), (0.99, 5.0)):
            added = pct(through, p) - pct(direct, p)
            print(f"  p{int(p * 100):<3} direct {pct(direct, p):6.3f}"
                  f"  gateway {pct(through, p):6.3f}"
                  f"  added {added:6.3f}  (target <= {target})"
                  f"  [bare Tornado {pct(bare_lat, p):6.3f}]")  # fmt: skip
        runs: list[list[tuple[float, float]]] = [[], []]
        for _ in range(args.rounds):
            for side in (0, 1):
                runs[side].append(wrk(urls[side], s, auths[side], gateways[side].pid))
        (r0, c0), (r1, c1) = (
            (statistics.median(r for r, _ in side), statistics.median(c for _, c in side))
            for side in runs
        )
        print(f"\nwith {n:,} more apps registered, {args.rounds} interleaved runs each (median):")
        print(f"  1 app:       {r0:>8,.0f}/s  {c0:.3f} ms CPU per request")
        print(f"  {n + 1:,} apps: {r1:>8,.0f}/s  {c1:.3f} ms CPU per request")
        print(
            f"  change: rate {(r1 - r0) / r0:+.1%}, CPU per request {(c1 - c0) / c0:+.1%}", end=""
        )
        print("  (target within 5%)")
        print("  runs:", [f"{r:,.0f}" for r, _ in runs[0]], [f"{r:,.0f}" for r, _ in runs[1]])
        if args.baseline:
            bind = free_port()
            baseline = start_gateway(db_urls[0], ports[0], bind, args.baseline)
            base_url = urls[0].replace(f":{ports[0]}/", f":{bind}/")
            compare_baseline(args, (gateways[0], urls[0]), (baseline, base_url), auths[0])
        p50, p95 = catalog_p95(f"http://127.0.0.1:{ports[1]}")
        print(f"catalog search over HTTP with {n:,} apps: p50 {p50:.2f} ms,", end=" ")
        print(f"p95 {p95:.2f} ms (target p95 <= 20)")
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
        for name in dbnames:
            asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
