"""Two gateway workers (two composition roots with their own route tables,
breakers and caches, sharing PostgreSQL and Redis, each serving HTTP): the rate
limit holds across them, and a suspension reaches the other worker through
Redis pub/sub."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio
import tornado.httpserver
import tornado.netutil

from server.app import make_app
from server.bootstrap import build
from server.settings import Settings
from tests.api.miniapps.conftest import Unit, citizen
from tests.support import Api, check_response

pytestmark = pytest.mark.asyncio


@pytest_asyncio.fixture
async def second_worker(settings: Settings, services: object) -> AsyncIterator[str]:
    svc = await build(settings, pool_size=2)
    svc.start_background()
    await svc.routes.ready()
    [sock] = tornado.netutil.bind_sockets(0, "127.0.0.1", family=socket.AF_INET)
    server = tornado.httpserver.HTTPServer(make_app(svc))
    server.add_sockets([sock])
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    server.stop()
    await server.close_all_connections()
    await svc.close()


async def test_limit_and_suspension_hold_across_two_workers(
    api: Api, unit: Unit, echo_url: str, second_worker: str
) -> None:
    limits = {"app": {"count": 7, "period": 3600, "burst": 7}}
    # Released after the second worker started: it learns the route through pub/sub.
    app_id = await unit.live(echo_url, rate_limit=limits)
    who = await citizen(api)
    headers = {"Authorization": f"Bearer {who['token']}"}
    async with httpx.AsyncClient(timeout=30) as other:

        async def via(base: str) -> int:
            resp = await other.get(f"{base}/m/{app_id}/x", headers=headers)
            check_response(resp)
            return resp.status_code

        for _ in range(100):  # the release message arrives within a second
            if await via(second_worker) != 404:
                break
            await asyncio.sleep(0.02)
        calls = [via(base) for base in (api.base_url, second_worker) for _ in range(8)]
        statuses = await asyncio.gather(*calls)
        assert statuses.count(200) == 6 and statuses.count(429) == 10  # 7 with the probe

        resp = await api.post(f"/api/v1/miniapps/{app_id}/suspend", token=unit.admin, json={})
        assert resp.json()["status"] == "suspended"
        started = time.monotonic()
        status = 0
        for _ in range(200):
            status = await via(second_worker)
            if status == 503:
                break
            await asyncio.sleep(0.01)
        print(f"suspension reached the other worker in {time.monotonic() - started:.3f} s")
        assert status == 503
