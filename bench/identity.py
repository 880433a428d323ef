"""Identity speed, measured in one run on this machine:

1. an authenticated request that only reads the token (GET /api/v1/identity/me,
   served from the token's claims) against a bare Tornado handler returning a
   body of the same size (goal: at least 0.6 of the bare rate);
2. OTP sign-ins per second (request a code, read it, exchange it), driven by
   concurrent asyncio clients (goal: at least 300 per second; reported).

    python bench/identity.py [--seconds 5] [--signins 600] [--workers 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import bare_tornado, best_of, gateway, wrk  # noqa: E402


class RawHttp:
    """One keep-alive HTTP/1.1 connection with hand-written framing.

    The load generator shares the two cores with the server: httpx's connection
    pool costs more CPU per request than the handlers measured, so the bench
    drives each connection by hand (request line, Content-Length, body).
    """

    def __init__(self, base: str) -> None:
        parts = urlsplit(base)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, payload: dict[str, str]) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        body = json.dumps(payload).encode()
        self.writer.write(
            b"POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (path.encode(), self.host.encode(), len(body), body)
        )
        head = await self.reader.readuntil(b"\r\n\r\n")
        length = _CONTENT_LENGTH.search(head)
        data = await self.reader.readexactly(int(length.group(1)) if length else 0)
        return int(head[9:12]), data

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            await self.writer.wait_closed()


_CONTENT_LENGTH = re.compile(rb"(?i)\r\ncontent-length:\s*(\d+)")


async def signins(
    base: str, n: int, concurrency: int, data_dir: str, db_url: str | None = None
) -> dict[str, float]:
    """n complete sign-ins; codes are read from the SMS outbox table directly."""
    import asyncpg

    from identity.crypto import Vault
    from server.embedded import EmbeddedPostgres

    if db_url is None:
        pg = EmbeddedPostgres(Path(data_dir) / "postgres")
        pg.start()  # attaches to the running embedded server
        db_url = pg.url
    vault = Vault((Path(data_dir) / "master.key").read_text().strip())
    # The client only reads: no session state to reset between borrowings.
    db = await asyncpg.create_pool(db_url, min_size=2, max_size=8, reset=_no_reset)
    phones = [f"+86137{i:08d}" for i in range(n)]
    latencies: list[float] = []

    async def one(http: RawHttp, phone: str) -> None:
        t = time.perf_counter()
        status, body = await http.post("/api/v1/identity/otp", {"phone": phone})
        assert status == 202, body
        blob = await db.fetchval(LAST_SMS, vault.blind_index(phone, context="phone"))
        code = vault.decrypt(blob, context="sms").split("验证码 ")[1][:6]
        status, body = await http.post(
            "/api/v1/identity/token", {"grant_type": "otp", "phone": phone, "code": code}
        )
        assert status == 200, body
        latencies.append(time.perf_counter() - t)

    async def client(share: list[str]) -> None:
        http = RawHttp(base)
        try:
            for phone in share:
                await one(http, phone)
        finally:
            await http.close()

    started = time.perf_counter()
    await asyncio.gather(*(client(phones[i::concurrency]) for i in range(concurrency)))
    elapsed = time.perf_counter() - started
    await db.close()
    latencies.sort()
    return {
        "signins_per_s": n / elapsed,
        "p50_ms": latencies[len(latencies) // 2] * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000,
    }


async def _no_reset(conn: object) -> None:
    return None


LAST_SMS = "SELECT body_enc FROM sms_outbox WHERE phone_index = $1 ORDER BY id DESC LIMIT 1"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--seconds", type=int, default=5)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--signins", type=int, default=600)
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args()
    first_dir = tempfile.mkdtemp(prefix="superapp-bench-")
    with bare_tornado() as bare, gateway(workers=1, data_dir=first_dir) as gw:
        token = asyncio.run(_token(gw, first_dir))
        hdr = {"Authorization": f"Bearer {token}"}
        wrk(bare + "/me", seconds=1)
        wrk(gw + "/api/v1/identity/me", seconds=1, headers=hdr)
        ref = best_of(args.runs, wrk, bare + "/me", seconds=args.seconds)
        me = best_of(args.runs, wrk, gw + "/api/v1/identity/me", seconds=args.seconds, headers=hdr)
    ratio = me["rps"] / ref["rps"]
    data_dir = tempfile.mkdtemp(prefix="superapp-bench-")
    with gateway(workers=args.workers, data_dir=data_dir) as gw:
        s = asyncio.run(signins(gw, args.signins, 64, data_dir))
    print(
        json.dumps(
            {
                "bench": "identity",
                "bare_tornado": ref,
                "me_from_token": me,
                "me_ratio": round(ratio, 3),
                "me_goal": 0.6,
                "signins": s,
                "signins_goal": 300,
                "workers": args.workers,
            }
        )
    )
    print(
        f"GET /me {me['rps']:.0f} req/s vs bare {ref['rps']:.0f}: ratio {ratio:.2f} (goal >= 0.60)"
    )
    print(
        f"OTP sign-ins: {s['signins_per_s']:.0f}/s with {args.workers} workers "
        f"(goal >= 300), p50 {s['p50_ms']:.1f} ms, p99 {s['p99_ms']:.1f} ms"
    )


async def _token(base: str, data_dir: str) -> str:
    import asyncpg

    from identity.crypto import Vault
    from server.embedded import EmbeddedPostgres

    pg = EmbeddedPostgres(Path(data_dir) / "postgres")
    pg.start()
    vault = Vault((Path(data_dir) / "master.key").read_text().strip())
    phone = "+8613600000000"
    async with httpx.AsyncClient(base_url=base) as client:
        await client.post("/api/v1/identity/otp", json={"phone": phone})
        db = await asyncpg.connect(pg.url)
        blob = await db.fetchval(
            LAST_SMS,
            vault.blind_index(phone, context="phone"),
        )
        await db.close()
        code = vault.decrypt(blob, context="sms").split("验证码 ")[1][:6]
        r = await client.post(
            "/api/v1/identity/token", json={"grant_type": "otp", "phone": phone, "code": code}
        )
        return str(r.json()["access_token"])


if __name__ == "__main__":
    main()
