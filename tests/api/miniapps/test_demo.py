"""``superapp demo`` seeds 8,000+ released mini-apps and the echo demo app."""

from __future__ import annotations

import socket

import pytest
import tornado.httpserver

from server.demo.seed import seed
from server.sims import miniapp as echo_sim
from server.sims.launcher import SIMULATORS
from tests.api.miniapps.conftest import citizen
from tests.support import Api

pytestmark = pytest.mark.asyncio


@pytest.mark.timeout(300)
async def test_demo_seeds_the_catalog_idempotently_and_the_echo_app_works(
    api: Api, base_url: str
) -> None:
    steps: list[tuple[str, int, int]] = []
    first = await seed(api.services, lambda *a: steps.append(a))
    assert first["miniapps"]["count"] >= 8000
    assert steps[-1][0] == "mini-apps" and steps[-1][1] == steps[-1][2]
    again = await seed(api.services)
    assert again["apps"] == first["apps"] and again["miniapps"] == first["miniapps"]
    released = await api.services.pool.fetchval(
        "SELECT count(*) FROM miniapps WHERE status = 'released'"
    )
    assert released >= 8000
    assert {"unit_admin", "developer", "reviewer"} <= set(first["accounts"])

    resp = await api.get("/api/v1/catalog", params={"q": "gjj"})
    assert any("公积金" in i["name_zh"] for i in resp.json()["items"][:5])

    echo = first["apps"]["echo"]
    port = SIMULATORS["miniapp"].port
    with socket.socket() as s:
        if s.connect_ex(("127.0.0.1", port)) == 0:
            pytest.skip("the demo echo port is taken")
    server = tornado.httpserver.HTTPServer(
        echo_sim.make_app({"jwks_url": base_url + "/.well-known/jwks.json"})
    )
    server.listen(port, "127.0.0.1")
    try:
        who = await citizen(api)
        resp = await api.get(echo["gateway_path"] + "hello", token=who["token"])
        assert resp.status_code == 200, resp.text
        assert resp.json()["identity"]["verified"] is True
    finally:
        server.stop()
