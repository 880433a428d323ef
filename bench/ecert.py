"""E-certificate benchmark: verifications per second through POST /api/v1/ecert/verify
against a bare Tornado handler served by the same process in the same run, QR
issuance (text) per second, PNG rendering median, and the QR version of each profile.

    python bench/ecert.py [--requests 2000] [--concurrency 16] [--profile FILE]
                          [--event-loop auto|uvloop|asyncio]

Besides the rates it reports the serving process's CPU time per request for the
verify route and the bare handler (steadier than rates on a shared machine);
``--profile`` writes a cProfile of the server during the verify run.

Uses SUPERAPP_DATABASE_URL / SUPERAPP_REDIS_URL when set, else the embedded servers
under a temporary data directory. The load generator runs in a child process so
that it does not share the server's event loop.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import secrets
import socket
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import asyncpg  # noqa: E402
import tornado.httpserver  # noqa: E402
import tornado.netutil  # noqa: E402
import tornado.web  # noqa: E402

from ecert.presentation.cwt import StatusRef, encode_presentation  # noqa: E402
from ecert.presentation.keys import kid_bytes  # noqa: E402
from ecert.presentation.qr import qr_version, render_png  # noqa: E402
from server import loops  # noqa: E402
from server.app import make_app  # noqa: E402
from server.bootstrap import build, prepare_database, resolve  # noqa: E402
from server.settings import Settings  # noqa: E402


class BareHandler(tornado.web.RequestHandler):
    def post(self) -> None:
        body = json.loads(self.request.body)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"valid": True, "echo": len(body.get("qr_text", ""))}))


def _load(url: str, bodies: list[str], token: str, concurrency: int, out: Any) -> None:
    """Keep-alive HTTP/1.1 over raw asyncio streams: a client much cheaper than the server."""
    parts = urlsplit(url)

    async def main() -> tuple[float, dict[int, int]]:
        statuses: dict[int, int] = {}
        queue = list(reversed(bodies))

        async def worker() -> None:
            reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
            while queue:
                body = queue.pop().encode()
                writer.write(
                    (
                        f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
                        f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
                        f"Content-Length: {len(body)}\r\n\r\n"
                    ).encode()
                    + body
                )
                head = await reader.readuntil(b"\r\n\r\n")
                status = int(head.split(b" ", 2)[1])
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                await reader.readexactly(length)
                statuses[status] = statuses.get(status, 0) + 1
            writer.close()

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - start, statuses

    elapsed, statuses = asyncio.run(main())
    out.put((elapsed, statuses))


async def run_load(
    url: str, bodies: list[str], token: str, concurrency: int
) -> tuple[float, dict[int, int]]:
    ctx = multiprocessing.get_context("spawn")
    q = ctx.Queue()
    proc = ctx.Process(target=_load, args=(url, bodies, token, concurrency, q))
    proc.start()
    while q.empty():
        await asyncio.sleep(0.05)
    result = q.get()
    proc.join()
    return result


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    data_dir = Path(tempfile.mkdtemp(prefix="bench-ecert-"))
    [sock] = tornado.netutil.bind_sockets(0, "127.0.0.1", family=socket.AF_INET)
    port = sock.getsockname()[1]
    base = Settings.from_env(os.environ).with_(
        data_dir=data_dir, port=port, public_url=f"http://127.0.0.1:{port}", simulators=False
    )
    server_url = base.database_url
    if server_url:  # a throwaway database on the given server, dropped afterwards
        name = "bench_ecert_" + secrets.token_hex(4)
        admin = await asyncpg.connect(server_url)
        await admin.execute(f'CREATE DATABASE "{name}"')
        await admin.close()
        base = base.with_(database_url=urlunsplit(urlsplit(server_url)._replace(path="/" + name)))
    settings, embedded = resolve(base)
    try:
        await prepare_database(settings)
        svc = await build(settings, pool_size=10)
        server = tornado.httpserver.HTTPServer(make_app(svc))
        server.add_sockets([sock])
        [bare_sock] = tornado.netutil.bind_sockets(0, "127.0.0.1", family=socket.AF_INET)
        bare = tornado.httpserver.HTTPServer(tornado.web.Application([(r"/verify", BareHandler)]))
        bare.add_sockets([bare_sock])
        result = await measure(svc, args, f"http://127.0.0.1:{port}", bare_sock.getsockname()[1])
        server.stop()
        bare.stop()
        await svc.close()
        return result
    finally:
        embedded.stop()
        if server_url:
            admin = await asyncpg.connect(server_url)
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.close()


async def measure(svc: Any, args: argparse.Namespace, url: str, bare_port: int) -> dict[str, Any]:
    from server.demo.ecert import seed_ecert

    async with svc.pool.acquire() as conn:
        citizen, _ = await svc.identity_repo.get_or_create_account(
            conn, "+86139" + str(secrets.randbelow(10**8)).zfill(8)
        )
    unit, _ = await svc.orgs.upsert_unit(
        code="sz-psb",
        name_zh="深圳市公安局",
        name_en="Public Security Bureau",
        kind="municipal",
        district_code="440300",
    )
    clerk, _ = await svc.orgs.grant(
        "+86139" + str(secrets.randbelow(10**8)).zfill(8), "counter-staff", unit.id, granted_by=None
    )
    seeded = await seed_ecert(svc, citizen.id)
    cert_id = seeded["resident_id"]
    clerk_token = svc.tokens.issue_access(
        sub=clerk.id, sid=None, acr=1, roles=[f"counter-staff:{unit.id}"]
    )
    p = svc.presentations
    # QR issuance (text), through the service: ownership, status, issuer signature, signing, Redis.
    for _ in range(50):
        await p.issue_qr(citizen.id, cert_id, "minimal")
    n = args.requests
    texts: list[str] = []

    async def issuer_task(count: int) -> None:
        for _ in range(count):
            texts.append((await p.issue_qr(citizen.id, cert_id, "minimal")).qr_text)

    start = time.perf_counter()
    await asyncio.gather(*(issuer_task(n // args.concurrency) for _ in range(args.concurrency)))
    qr_rate = len(texts) / (time.perf_counter() - start)
    n = len(texts)
    texts_only = []
    key = svc.tokens.ring.active
    cert = await svc.certificates.own(citizen.id, cert_id)
    start = time.perf_counter()
    for _ in range(n):
        texts_only.append(
            encode_presentation(
                key.private_key,
                kid_bytes(key.kid),
                cert_type="eid",
                masked_name="林*",
                masked_id="4403**********6485",
                issued_at=datetime.now(UTC),
                expires_at=datetime.now(UTC) + timedelta(seconds=60),
                status=StatusRef(cert.status_idx, p.status_uri(cert.status_list_id)),
            )
        )
    encode_rate = n / (time.perf_counter() - start)
    standard = (await p.issue_qr(citizen.id, cert_id, "standard")).qr_text
    # PNG rendering.
    times = []
    for text in texts[:200]:
        t0 = time.perf_counter()
        render_png(text)
        times.append(time.perf_counter() - t0)
    bodies = [json.dumps({"qr_text": t, "matter_code": "identity-check"}) for t in texts]
    warm = [(await p.issue_qr(citizen.id, cert_id, "minimal")).qr_text for _ in range(100)]
    await run_load(
        f"{url}/api/v1/ecert/verify",
        [json.dumps({"qr_text": t, "matter_code": "identity-check"}) for t in warm],
        clerk_token,
        args.concurrency,
    )
    cpu0 = time.process_time()
    bare_time, bare_status = await run_load(
        f"http://127.0.0.1:{bare_port}/verify", bodies, clerk_token, args.concurrency
    )
    profiler = None
    if args.profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    cpu1 = time.process_time()
    verify_time, verify_status = await run_load(
        f"{url}/api/v1/ecert/verify", bodies, clerk_token, args.concurrency
    )
    cpu2 = time.process_time()
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(args.profile)
    bare_rps, verify_rps = n / bare_time, n / verify_time
    return {
        "requests": n,
        "concurrency": args.concurrency,
        "event_loop": loops.loop_name(),
        "verify_per_s": round(verify_rps),
        "verify_statuses": verify_status,
        "bare_tornado_per_s": round(bare_rps),
        "bare_statuses": bare_status,
        "verify_ratio": round(verify_rps / bare_rps, 3),
        # CPU time of the serving process per request (less disturbed by a busy machine
        # than the rates); PostgreSQL's and Redis's own CPU is not included.
        "server_cpu_us_per_verify": round((cpu2 - cpu1) / n * 1e6),
        "server_cpu_us_per_bare": round((cpu1 - cpu0) / n * 1e6),
        "qr_issuance_per_s": round(qr_rate),
        "qr_issuance_note": "through the service: ownership, status, issuer signature, Redis",
        "qr_text_encode_per_s": round(encode_rate),
        "png_render_median_ms": round(statistics.median(times) * 1000, 2),
        "qr_version": {
            "minimal": qr_version(texts[0]),
            "standard": qr_version(standard),
            "minimal_chars": len(texts[0]),
            "status_uri_base": url,
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument(
        "--profile", metavar="FILE", help="write a cProfile of the server during the verify run"
    )
    parser.add_argument(
        "--event-loop",
        choices=loops.CHOICES,
        default="auto",
        help="the serving process's loop, for the route and the bare handler alike",
    )
    args = parser.parse_args()
    print(json.dumps(loops.run(bench(args), args.event_loop), indent=2))


if __name__ == "__main__":
    main()
