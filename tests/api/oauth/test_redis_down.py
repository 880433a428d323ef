"""With Redis down, the provider fails closed: no code, no exchange, no userinfo."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from server.bootstrap import Services
from server.settings import Settings
from tests.api.oauth.oidc_support import authorize, exchange, get_code, new_client, pkce_pair
from tests.support import Api, dead_port, serve

pytestmark = pytest.mark.asyncio


@pytest_asyncio.fixture
async def broken_api(settings: Settings, services: Services) -> AsyncIterator[Api]:
    async with serve(settings.with_(redis_url=f"redis://127.0.0.1:{dead_port()}/0")) as client:
        yield client


async def test_provider_fails_closed_without_redis(api: Api, broken_api: Api, phone: str) -> None:
    citizen = await api.sign_in(phone)
    client, secret = await new_client(api)
    verifier, challenge = pkce_pair()
    code = (await get_code(api, citizen["access_token"], client, challenge))["code"]
    tokens = (await exchange(api, client, secret, code, verifier)).json()
    code = (await get_code(api, citizen["access_token"], client, challenge))["code"]

    page = await authorize(broken_api, citizen["access_token"], client, challenge, scope="phone")
    assert page.status_code == 503
    resp = await exchange(broken_api, client, secret, code, verifier)
    assert resp.status_code == 503 and resp.json()["code"] == "dependency-unavailable"
    info = await broken_api.get("/oauth2/userinfo", token=tokens["access_token"])
    assert info.status_code == 503
    # The code was not used up while Redis was away.
    assert (await exchange(api, client, secret, code, verifier)).status_code == 200
