"""Two gateway workers (separate Services, pools and Redis clients) share the
one-time check: the same code scanned at both at once succeeds exactly once."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
import tornado.httpserver
import tornado.netutil

from server.app import make_app
from server.bootstrap import Services, build
from server.settings import Settings
from tests.api.ecert.helpers import World, issue, qr
from tests.support import Api

pytestmark = pytest.mark.asyncio


@pytest_asyncio.fixture
async def second_worker(settings: Settings, services: Services) -> AsyncIterator[Api]:
    [sock] = tornado.netutil.bind_sockets(0, "127.0.0.1", family=socket.AF_INET)
    svc = await build(settings)  # same settings (public URL, keys, DB, Redis), own pools
    server = tornado.httpserver.HTTPServer(make_app(svc))
    server.add_sockets([sock])
    client = Api(f"http://127.0.0.1:{sock.getsockname()[1]}", svc)
    yield client
    await client.aclose()
    server.stop()
    await svc.close()


async def test_one_code_scanned_at_two_workers_succeeds_once(
    api: Api, second_worker: Api, world: World
) -> None:
    for _ in range(3):
        cert = await issue(api, world)
        text = (await qr(api, world, cert["id"]))["qr_text"]
        body = {"qr_text": text, "matter_code": "t-all"}
        results = await asyncio.gather(
            *(
                worker.post("/api/v1/ecert/verify", token=world.clerk_token, json=body)
                for worker in (api, second_worker, api, second_worker)
            )
        )
        assert sorted(r.status_code for r in results) == [200, 410, 410, 410]
        uses = await api.get(f"/api/v1/ecert/wallet/{cert['id']}/uses", token=world.citizen_token)
        assert sorted(u["result"] for u in uses.json()["uses"]) == ["qr-replayed"] * 3 + ["valid"]
