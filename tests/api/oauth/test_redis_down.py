"""With Redis down, the provider fails closed: no code, no exchange, no userinfo."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
import tornado.httpserver
import tornado.netutil

from server.app import make_app
from server.bootstrap import Services, build
from server.settings import Settings
from tests.api.oauth.oidc_support import authorize, exchange, get_code, new_client, pkce_pair
from tests.support import Api

pytestmark = pytest.mark.asyncio


@pytest_asyncio.fixture
async def broken_api(settings: Settings, services: Services) -> AsyncIterator[Api]:
    with socket.socket() as s:  # a port where nothing listens
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]
    [sock] = tornado.netutil.bind_sockets(0, "127.0.0.1", family=socket.AF_INET)
    svc = await build(settings.with_(redis_url=f"redis://127.0.0.1:{dead_port}/0"))
    server = tornado.httpserver.HTTPServer(make_app(svc))
    server.add_sockets([sock])
    client = Api(f"http://127.0.0.1:{sock.getsockname()[1]}", svc)
    yield client
    await client.aclose()
    server.stop()
    await svc.close()


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
