"""Fixtures for the mini-app platform: the echo upstream and app helpers."""

from __future__ import annotations

import secrets
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
import tornado.httpserver
import tornado.netutil

from identity.pairwise import pairwise_sub
from miniapps.gray import bucket
from server.sims import miniapp as echo_sim
from tests.support import Api, dead_port, random_phone


@pytest_asyncio.fixture(scope="session")
async def echo_url(base_url: str) -> AsyncIterator[str]:
    """The demo echo upstream, verifying assertions against our JWKS."""
    [sock] = tornado.netutil.bind_sockets(0, "127.0.0.1", family=socket.AF_INET)
    server = tornado.httpserver.HTTPServer(
        echo_sim.make_app({"jwks_url": base_url + "/.well-known/jwks.json"})
    )
    server.add_sockets([sock])
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    server.stop()


def manifest(upstream: str, **over: Any) -> dict[str, Any]:
    return {
        "name_zh": over.pop("name_zh", "住房公积金提取测试" + secrets.token_hex(2)),
        "name_en": "Provident fund withdrawal (test)",
        "category": "provident-fund",
        "kind": "service",
        "description": "在线提取住房公积金",
        "districts": ["440305"],
        "upstream": upstream,
        "scopes": ["openid", "phone"],
        "min_assurance": "L1",
        "contact": {"name": "王工", "phone": "+86 755 1234 5678"},
        **over,
    }


class Unit:
    """A unit with its staff tokens and a platform reviewer."""

    def __init__(self, api: Api) -> None:
        self.api = api

    async def setup(self) -> Unit:
        self.id = await self.api.unit()
        self.admin_sub, self.admin = await self.api.staff("unit-admin", self.id)
        self.dev_sub, self.dev = await self.api.staff("developer", self.id)
        _, self.reviewer = await self.api.staff("reviewer", None)
        return self

    async def register(self, upstream: str, version: str = "1.0.0", **over: Any) -> str:
        resp = await self.api.post(
            "/api/v1/miniapps",
            token=self.admin,
            json={"unit_id": self.id, "version": version, "manifest": manifest(upstream, **over)},
        )
        assert resp.status_code == 201, resp.text
        return str(resp.json()["app"]["app_id"])

    async def approve(self, app_id: str, version: str = "1.0.0") -> None:
        base = f"/api/v1/miniapps/{app_id}/versions/{version}"
        resp = await self.api.post(base + "/submit", token=self.dev)
        assert resp.status_code == 200, resp.text
        resp = await self.api.post(
            base + "/review", token=self.reviewer, json={"decision": "approve", "reason": "ok"}
        )
        assert resp.status_code == 200, resp.text

    async def release(
        self, app_id: str, version: str = "1.0.0", percent: float = 100, cohort: Any = None
    ) -> dict[str, Any]:
        resp = await self.api.post(
            f"/api/v1/miniapps/{app_id}/versions/{version}/release",
            token=self.dev,
            json={"percent": percent, "cohort": cohort},
        )
        assert resp.status_code == 200, resp.text
        return dict(resp.json())

    async def live(self, upstream: str, **over: Any) -> str:
        """A registered, approved app released to everyone."""
        app_id = await self.register(upstream, **over)
        await self.approve(app_id)
        await self.release(app_id)
        return app_id


@pytest_asyncio.fixture
async def unit(api: Api) -> Unit:
    return await Unit(api).setup()


async def citizen(
    api: Api,
    *,
    app_id: str | None = None,
    unit_id: str | None = None,
    inside: bool | None = None,
    percent: float = 100,
    district: str | None = None,
    level: int = 1,
) -> dict[str, Any]:
    """A signed-in citizen; with ``inside`` set, one whose gray bucket is inside/outside."""
    svc = api.services
    while True:
        phone = random_phone()
        async with svc.pool.acquire() as conn:
            account, _ = await svc.identity_repo.get_or_create_account(conn, phone)
        if inside is None:
            break
        assert app_id and unit_id
        b = bucket(app_id, pairwise_sub(svc.vault, account.id, sector=unit_id))
        if (b < percent * 100) == inside:
            break
    await svc.pool.execute(
        "UPDATE accounts SET region_code = $2, assurance_level = $3 WHERE id = $1",
        account.id,
        district,
        level,
    )
    tokens = await api.sign_in(phone)
    return {"sub": account.id, "token": tokens["access_token"], "phone": phone}


@pytest.fixture
def closed_port() -> int:
    return dead_port()
