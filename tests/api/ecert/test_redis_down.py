"""With Redis down the one-time check cannot be made: verification fails closed (503)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from server.bootstrap import Services
from server.settings import Settings
from tests.api.ecert.helpers import World, issue, qr
from tests.support import Api, dead_port, serve

pytestmark = pytest.mark.asyncio


@pytest_asyncio.fixture
async def broken_api(settings: Settings, services: Services) -> AsyncIterator[Api]:
    async with serve(settings.with_(redis_url=f"redis://127.0.0.1:{dead_port()}/0")) as client:
        yield client


async def test_verify_and_qr_fail_closed(api: Api, broken_api: Api, world: World) -> None:
    cert = await issue(api, world)
    text = (await qr(api, world, cert["id"]))["qr_text"]
    resp = await broken_api.post(
        "/api/v1/ecert/verify",
        token=world.clerk_token,
        json={"qr_text": text, "matter_code": "t-all"},
    )
    assert resp.status_code == 503 and resp.json()["code"] == "dependency-unavailable"
    assert resp.headers.get("Retry-After")
    resp = await broken_api.post(
        f"/api/v1/ecert/wallet/{cert['id']}/qr", token=world.citizen_token, json={}
    )
    assert resp.status_code == 503
    # Nothing was consumed: with Redis back, the code still works once.
    resp = await api.post(
        "/api/v1/ecert/verify",
        token=world.clerk_token,
        json={"qr_text": text, "matter_code": "t-all"},
    )
    assert resp.status_code == 200
