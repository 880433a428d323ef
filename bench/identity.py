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
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import bare_tornado, best_of, gateway, wrk  # noqa: E402


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
    db = await asyncpg.create_pool(db_url, min_size=2, max_size=8)
    phones = [f"+86137{i:08d}" for i in range(n)]
    sem = asyncio.Semaphore(concurrency)
    latencies: list[float] = []

    async with httpx.AsyncClient(
        base_url=base, timeout=30, limits=httpx.Limits(max_connections=concurrency)
    ) as client:

        async def one(phone: str) -> None:
            async with sem:
                t = time.perf_counter()
                r = await client.post("/api/v1/identity/otp", json={"phone": phone})
                assert r.status_code == 202, r.text
                blob = await db.fetchval(
                    LAST_SMS,
                    vault.blind_index(phone, context="phone"),
                )
                code = vault.decrypt(blob, context="sms").split("验证码 ")[1][:6]
                r = await client.post(
                    "/api/v1/identity/token",
                    json={"grant_type": "otp", "phone": phone, "code": code},
                )
                assert r.status_code == 200, r.text
                latencies.append(time.perf_counter() - t)

        started = time.perf_counter()
        await asyncio.gather(*(one(p) for p in phones))
        elapsed = time.perf_counter() - started
    await db.close()
    latencies.sort()
    return {
        "signins_per_s": n / elapsed,
        "p50_ms": latencies[len(latencies) // 2] * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000,
    }


LAST_SMS = "SELECT body_enc FROM sms_outbox WHERE phone_index = $1 ORDER BY id DESC LIMIT 1"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--seconds", type=int, default=5)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--signins", type=int, default=600)
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args()
    with bare_tornado() as bare, gateway(workers=1) as gw:
        token = asyncio.run(_token(gw))
        hdr = {"Authorization": f"Bearer {token}"}
        wrk(bare + "/me", seconds=1)
        wrk(gw + "/api/v1/identity/me", seconds=1, headers=hdr)
        ref = best_of(args.runs, wrk, bare + "/me", seconds=args.seconds)
        me = best_of(args.runs, wrk, gw + "/api/v1/identity/me", seconds=args.seconds, headers=hdr)
    ratio = me["rps"] / ref["rps"]
    with gateway(workers=args.workers) as gw:
        data_dir = _data_dir_of(gw)
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


async def _token(base: str) -> str:
    data_dir = _data_dir_of(base)
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


def _data_dir_of(base: str) -> str:
    import bench.common as c

    return c.LAST_DATA_DIR


if __name__ == "__main__":
    main()
