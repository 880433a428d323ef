"""An ended session's access tokens stop working before their exp, on every worker."""

from __future__ import annotations

import asyncio
import contextlib
import secrets

import pytest

from identity.revocation import RevokedSessions
from tests.support import Api

pytestmark = pytest.mark.asyncio


async def _me(api: Api, token: str) -> int:
    return (await api.get("/api/v1/identity/me", token=token)).status_code


async def test_logout_ends_the_access_token_too(api: Api, phone: str) -> None:
    tokens = await api.sign_in(phone)
    assert await _me(api, tokens["access_token"]) == 200  # now in the verified-token cache
    assert (
        await api.post("/api/v1/identity/logout", token=tokens["access_token"])
    ).status_code == 204
    resp = await api.get("/api/v1/identity/me", token=tokens["access_token"])
    assert resp.status_code == 401 and resp.json()["code"] == "invalid-token"


async def test_revoking_a_device_ends_only_that_devices_tokens(api: Api, phone: str) -> None:
    mine = await api.sign_in(phone)
    tablet = await api.sign_in(phone)
    assert await _me(api, tablet["access_token"]) == 200
    sessions = (await api.get("/api/v1/identity/me/sessions", token=mine["access_token"])).json()
    other = next(s for s in sessions["sessions"] if not s["current"])
    resp = await api.delete(
        f"/api/v1/identity/me/sessions/{other['id']}", token=mine["access_token"]
    )
    assert resp.status_code == 204
    assert await _me(api, tablet["access_token"]) == 401
    assert await _me(api, mine["access_token"]) == 200


async def test_refresh_token_reuse_ends_the_access_tokens(api: Api, phone: str) -> None:
    tokens = await api.sign_in(phone)
    body = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    fresh = (await api.post("/api/v1/identity/token", json=body)).json()
    assert (await api.post("/api/v1/identity/token", json=body)).status_code == 401  # reuse
    assert await _me(api, fresh["access_token"]) == 401
    assert await _me(api, tokens["access_token"]) == 401


async def test_other_workers_learn_of_an_ended_session(api: Api) -> None:
    redis = api.services.redis
    here = RevokedSessions(redis, ttl=600)
    ended_before = "ses_" + secrets.token_hex(8)
    await here.revoke(ended_before)
    there = RevokedSessions(redis, ttl=600)  # another worker, starting later
    task = asyncio.create_task(there.listen())
    try:
        await asyncio.wait_for(there.ready.wait(), 10)
        assert ended_before in there  # loaded from the sorted set at start
        ended_now = "ses_" + secrets.token_hex(8)
        assert ended_now not in there
        await here.revoke(ended_now)
        for _ in range(100):  # announced on the pub/sub channel
            if ended_now in there:
                break
            await asyncio.sleep(0.05)
        assert ended_now in there
        assert "ses_never" not in there
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_without_redis_the_ending_still_holds_on_this_worker() -> None:
    import redis.asyncio as aioredis

    from tests.support import dead_port

    down = aioredis.Redis(port=dead_port(), socket_connect_timeout=0.5)
    revoked = RevokedSessions(down, ttl=600)
    await revoked.revoke("ses_offline")  # logged as a warning, not raised
    assert "ses_offline" in revoked
    await down.aclose()
