"""With Redis down, OTP fails closed with 503 and access tokens still verify."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from server.bootstrap import Services
from server.settings import Settings
from tests.support import Api, dead_port, random_phone, serve

pytestmark = pytest.mark.asyncio


@pytest_asyncio.fixture
async def broken_api(settings: Settings, services: Services) -> AsyncIterator[Api]:
    async with serve(settings.with_(redis_url=f"redis://127.0.0.1:{dead_port()}/0")) as client:
        yield client


async def test_otp_and_refresh_fail_closed_tokens_keep_working(api: Api, broken_api: Api) -> None:
    tokens = await api.sign_in(random_phone())  # signed in while Redis was up
    resp = await broken_api.post("/api/v1/identity/otp", json={"phone": random_phone()})
    assert resp.status_code == 503
    assert resp.json()["code"] == "dependency-unavailable"
    assert resp.headers["Retry-After"]
    resp = await broken_api.post(
        "/api/v1/identity/token",
        json={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
    )
    assert resp.status_code == 503
    me = await broken_api.get("/api/v1/identity/me", token=tokens["access_token"])
    assert me.status_code == 200
    ready = await broken_api.get("/readyz")
    assert ready.status_code == 503 and ready.json()["failed"] == ["redis"]
