"""Gateway reliability: breaker, timeouts, suspension on every worker, exact
rate limits, assurance, consent, rollback."""

from __future__ import annotations

import asyncio
import hashlib
import socket
from collections.abc import AsyncIterator

import pytest
import tornado.httpserver
import tornado.netutil
import tornado.web

from miniapps.routes import RouteTable
from tests.api.miniapps.conftest import Unit, citizen, manifest
from tests.support import Api

pytestmark = pytest.mark.asyncio


async def test_upstream_down_opens_the_breaker(api: Api, unit: Unit, closed_port: int) -> None:
    app_id = await unit.live(f"http://127.0.0.1:{closed_port}")
    who = await citizen(api)
    for _ in range(5):
        resp = await api.get(f"/m/{app_id}/x", token=who["token"])
        assert resp.status_code == 502 and resp.json()["code"] == "upstream-unreachable"
    resp = await api.get(f"/m/{app_id}/x", token=who["token"])
    assert resp.status_code == 503 and resp.json()["code"] == "upstream-circuit-open"
    assert 1 <= int(resp.headers["Retry-After"]) <= 30


async def test_slow_upstream_answers_504(api: Api, unit: Unit, echo_url: str) -> None:
    app_id = await unit.live(echo_url, timeout_ms=200)
    who = await citizen(api)
    resp = await api.get(f"/m/{app_id}/slow?ms=3000", token=who["token"])
    assert resp.status_code == 504 and resp.json()["code"] == "upstream-timeout"
    resp = await api.get(f"/m/{app_id}/slow?ms=0", token=who["token"])
    assert resp.status_code == 200


async def test_upstream_5xx_passes_through(api: Api, unit: Unit, echo_url: str) -> None:
    app_id = await unit.live(echo_url)
    who = await citizen(api)
    resp = await api.client.get(
        f"/m/{app_id}/status/503", headers={"Authorization": f"Bearer {who['token']}"}
    )
    assert resp.status_code == 503 and resp.json()["path"] == "/status/503"


async def test_paths_are_forwarded_as_encoded_and_never_climb(
    api: Api, unit: Unit, echo_url: str
) -> None:
    app_id = await unit.live(echo_url + "/svc")
    who = await citizen(api)
    # An escaped control character or slash stays escaped: data, not structure.
    resp = await api.get(f"/m/{app_id}/a%19b%2Fc/%E5%85%AC?x=1", token=who["token"])
    assert resp.status_code == 200, resp.text
    assert resp.json()["path"] == "/svc/a%19b%2Fc/%E5%85%AC"
    for climb in ("%2e%2e/admin", "a/..%2F..%2Fadmin", "a/%2E/b", "..%5cadmin"):
        resp = await api.get(f"/m/{app_id}/{climb}", token=who["token"])
        assert resp.status_code == 400 and resp.json()["code"] == "invalid-path", climb


async def test_post_body_and_redirects_are_passed_on(api: Api, unit: Unit, echo_url: str) -> None:
    app_id = await unit.live(echo_url)
    who = await citizen(api)
    resp = await api.post(f"/m/{app_id}/form", token=who["token"], content=b"a" * 100_000)
    assert resp.status_code == 200 and resp.json()["body_bytes"] == 100_000
    assert resp.json()["method"] == "POST"
    resp = await api.request("HEAD", f"/m/{app_id}/x", token=who["token"])
    assert resp.status_code == 200 and resp.content == b""
    resp = await api.request("PUT", f"/m/{app_id}/x", token=who["token"], json={"a": 1})
    assert (
        resp.json()["method"] == "PUT"
        and resp.json()["headers"]["Content-Type"] == "application/json"
    )


async def test_suspended_app_stops_on_every_worker(api: Api, unit: Unit, echo_url: str) -> None:
    app_id = await unit.live(echo_url)
    who = await citizen(api)
    svc = api.services
    # A second worker's route table, listening on Redis like every worker does.
    other = RouteTable(svc.pool, svc.redis, svc.routes.repo, svc.routes.policy, full_reload=3600)
    other.start()
    try:
        await other.ready()
        assert other.get(app_id) is not None and other.get(app_id).status == "released"
        assert (await api.get(f"/m/{app_id}/x", token=who["token"])).status_code == 200
        resp = await api.post(f"/api/v1/miniapps/{app_id}/suspend", token=unit.admin, json={})
        assert resp.json()["status"] == "suspended"
        # This worker at once; the other once the pub/sub message arrives.
        resp = await api.get(f"/m/{app_id}/x", token=who["token"])
        assert resp.status_code == 503 and resp.json()["code"] == "miniapp-unavailable"
        for _ in range(100):
            if other.get(app_id).status == "suspended":
                break
            await asyncio.sleep(0.02)
        assert other.get(app_id).status == "suspended"
        await api.post(f"/api/v1/miniapps/{app_id}/resume", token=unit.reviewer, json={})
        assert (await api.get(f"/m/{app_id}/x", token=who["token"])).status_code == 200
    finally:
        await other.stop()


async def test_rate_limits_are_exact_under_concurrency(api: Api, unit: Unit, echo_url: str) -> None:
    limits = {
        "app": {"count": 6, "period": 3600, "burst": 6},
        "citizen": {"count": 4, "period": 3600, "burst": 4},
    }
    app_id = await unit.live(echo_url, rate_limit=limits)
    a, b = await citizen(api), await citizen(api)
    first = await asyncio.gather(*(api.get(f"/m/{app_id}/x", token=a["token"]) for _ in range(10)))
    assert sorted(r.status_code for r in first) == [200] * 4 + [429] * 6
    refused = next(r for r in first if r.status_code == 429)
    assert refused.json()["code"] == "rate-limited" and int(refused.headers["Retry-After"]) >= 1
    # The app's budget of 6 holds across citizens: b gets the 2 that are left.
    second = await asyncio.gather(*(api.get(f"/m/{app_id}/x", token=b["token"]) for _ in range(5)))
    assert sorted(r.status_code for r in second) == [200] * 2 + [429] * 3


async def test_min_assurance_and_consented_claims(api: Api, unit: Unit, echo_url: str) -> None:
    app_id = await unit.live(echo_url, min_assurance="L2")
    low = await citizen(api, level=1)
    resp = await api.get(f"/m/{app_id}/x", token=low["token"])
    assert resp.status_code == 403 and resp.json()["code"] == "insufficient-assurance"
    high = await citizen(api, level=2)
    claims = (await api.get(f"/m/{app_id}/x", token=high["token"])).json()["identity"]["claims"]
    assert claims["acr"] == "L2" and "phone_masked" not in claims and claims["scope"] == "openid"
    # After consenting to "phone" the masked phone number is in the assertion.
    app = (await api.get(f"/api/v1/miniapps/{app_id}", token=unit.admin)).json()["app"]
    await api.services.consents.grant(high["sub"], app["client_id"], ["openid", "phone"])
    api.services.gateway._consents = type(api.services.gateway._consents)(10, 10)  # drop cache
    claims = (await api.get(f"/m/{app_id}/x", token=high["token"])).json()["identity"]["claims"]
    assert claims["scope"] == "openid phone" and claims["phone_masked"].endswith(high["phone"][-4:])


async def test_gray_falls_back_to_the_previous_release_and_rolls_back(
    api: Api, unit: Unit, echo_url: str
) -> None:
    app_id = await unit.live(echo_url + "/v1")
    resp = await api.post(
        f"/api/v1/miniapps/{app_id}/versions",
        token=unit.dev,
        json={
            "version": "2.0.0",
            "manifest": {**_manifest_of(app_id), "upstream": echo_url + "/v2"},
        },
    )
    assert resp.status_code == 201, resp.text
    await unit.approve(app_id, "2.0.0")
    await unit.release(app_id, "2.0.0", percent=50)
    inside = await citizen(api, app_id=app_id, unit_id=unit.id, inside=True, percent=50)
    outside = await citizen(api, app_id=app_id, unit_id=unit.id, inside=False, percent=50)
    assert (await api.get(f"/m/{app_id}/a", token=inside["token"])).json()["path"] == "/v2/a"
    assert (await api.get(f"/m/{app_id}/a", token=outside["token"])).json()["path"] == "/v1/a"
    # Rollback to 1.0.0 serves it to everyone; an unknown version is refused.
    resp = await api.post(
        f"/api/v1/miniapps/{app_id}/rollback", token=unit.dev, json={"version": "9"}
    )
    assert resp.status_code == 409 and resp.json()["code"] == "rollback-not-allowed"
    resp = await api.post(
        f"/api/v1/miniapps/{app_id}/rollback", token=unit.dev, json={"version": "1.0.0"}
    )
    assert resp.json()["release"] == {
        "version": "1.0.0",
        "percent": 100.0,
        "cohort": None,
        "previous_version": None,
    }
    assert (await api.get(f"/m/{app_id}/a", token=inside["token"])).json()["path"] == "/v1/a"


def _manifest_of(app_id: str) -> dict[str, object]:
    return manifest("http://127.0.0.1:1")


async def test_private_upstream_refused_at_submission(api: Api, unit: Unit) -> None:
    app_id = await unit.register("http://10.1.2.3/api")
    resp = await api.post(f"/api/v1/miniapps/{app_id}/versions/1.0.0/submit", token=unit.dev)
    assert resp.status_code == 422 and resp.json()["code"] == "upstream-not-allowed"


async def test_credentials_rotate_and_work(api: Api, unit: Unit, echo_url: str) -> None:
    app_id = await unit.live(echo_url)
    resp = await api.post(f"/api/v1/miniapps/{app_id}/credentials", token=unit.admin, json={})
    assert resp.status_code == 201
    creds = resp.json()
    resp = await api.post(
        "/oauth2/token",
        data={"grant_type": "client_credentials", "scope": "openid"},
        auth=(creds["client_id"], creds["client_secret"]),
    )
    assert resp.status_code == 200, resp.text
    resp = await api.post(f"/api/v1/miniapps/{app_id}/credentials", token=unit.dev, json={})
    assert resp.status_code == 403  # only the unit admin sees a secret


async def test_public_key_credentials_rotate_with_an_overlap(
    api: Api, unit: Unit, echo_url: str
) -> None:
    import json
    import secrets
    import time

    import jwt
    from cryptography.hazmat.primitives.asymmetric import ec

    app_id = await unit.live(echo_url)
    url = f"/api/v1/miniapps/{app_id}/credentials"
    first = (await api.post(url, token=unit.admin, json={})).json()
    cid, secret = first["client_id"], first["client_secret"]
    assert first["auth_method"] == "client_secret_basic"

    def public(key: ec.EllipticCurvePrivateKey) -> dict[str, str]:
        return json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))

    async def token_by_key(key: ec.EllipticCurvePrivateKey) -> int:
        now = int(time.time())
        claims = {"iss": cid, "sub": cid, "aud": api.base_url + "/oauth2/token",
                  "iat": now, "exp": now + 60, "jti": secrets.token_urlsafe(16)}  # fmt: skip
        resp = await api.post(
            "/oauth2/token",
            data={
                "grant_type": "client_credentials",
                "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                "client_assertion": jwt.encode(claims, key, algorithm="ES256"),
            },
        )
        return resp.status_code

    async def token_by_secret() -> int:
        resp = await api.post(
            "/oauth2/token", data={"grant_type": "client_credentials"}, auth=(cid, secret)
        )
        return resp.status_code

    # Switch to a key: it works at once, the secret for the overlap only; no secret shown.
    k1 = ec.generate_private_key(ec.SECP256R1())
    resp = await api.post(url, token=unit.admin, json={"public_jwk": public(k1)})
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert body["auth_method"] == "private_key_jwt" and "client_secret" not in body
    assert body["public_jwk"] == {k: public(k1)[k] for k in ("kty", "crv", "x", "y")}
    assert await token_by_key(k1) == 200 and await token_by_secret() == 200
    # A new key with no overlap: the old key stops at once, and so does the secret before it.
    k2 = ec.generate_private_key(ec.SECP256R1())
    resp = await api.post(
        url, token=unit.admin, json={"public_jwk": public(k2), "overlap_seconds": 0}
    )
    assert resp.status_code == 201
    assert await token_by_key(k2) == 200
    assert await token_by_key(k1) == 401
    assert await token_by_secret() == 401
    # A private key, another unit's staff, a bad key: refused.
    private = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(k1))
    assert (await api.post(url, token=unit.admin, json={"public_jwk": private})).status_code == 422
    assert (await api.post(url, token=unit.dev, json={"public_jwk": public(k2)})).status_code == 403
    # Back to a secret: the key keeps working for the overlap.
    resp = await api.post(url, token=unit.admin, json={"overlap_seconds": 60})
    secret = resp.json()["client_secret"]
    assert await token_by_secret() == 200 and await token_by_key(k2) == 200


async def test_request_bodies_stream_upstream_with_a_cap(
    api: Api, unit: Unit, echo_url: str
) -> None:
    import hashlib

    app_id = await unit.live(echo_url)
    who = await citizen(api)
    chunks = [bytes([i]) * 65_536 for i in range(40)]  # 2.5 MiB, sent chunked

    async def body() -> AsyncIterator[bytes]:
        for c in chunks:
            yield c

    resp = await api.post(f"/m/{app_id}/upload", token=who["token"], content=body())
    assert resp.status_code == 200, resp.text
    echo = resp.json()
    assert echo["body_bytes"] == sum(map(len, chunks))
    assert echo["body_sha256"] == hashlib.sha256(b"".join(chunks)).hexdigest()

    async def too_big() -> AsyncIterator[bytes]:
        for _ in range(9 * 16):  # 9 MiB > the 8 MiB cap
            yield b"x" * 65_536

    resp = await api.post(f"/m/{app_id}/upload", token=who["token"], content=too_big())
    assert resp.status_code == 413


async def test_a_refused_body_leaves_no_upstream_connection_checked_out(
    api: Api, unit: Unit
) -> None:
    async def early(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:  # answers at once, then reads (and drops) whatever body comes
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            while await reader.read(65536):
                pass
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    server = await asyncio.start_server(early, "127.0.0.1", 0)
    try:
        app_id = await unit.live(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}")
        who = await citizen(api)

        async def too_big() -> AsyncIterator[bytes]:
            for _ in range(9 * 16):  # 9 MiB > the 8 MiB cap
                yield b"x" * 65_536

        pool = api.services.upstream_http
        for _ in range(3):
            resp = await api.post(f"/m/{app_id}/upload", token=who["token"], content=too_big())
            assert resp.status_code == 413  # the upstream's early answer is not relayed
        for _ in range(200):  # a cancelled exchange lets go on a later loop turn
            if sum(pool._open.values()) == pool.idle_count():
                break
            await asyncio.sleep(0.01)
        assert sum(pool._open.values()) == pool.idle_count()  # no connection left checked out
    finally:
        server.close()


async def test_an_ended_session_no_longer_passes_the_gateway(
    api: Api, unit: Unit, echo_url: str
) -> None:
    app_id = await unit.live(echo_url)
    who = await citizen(api)
    first = await api.get(f"/m/{app_id}/x", token=who["token"])  # the token is now cached
    second = await api.get(f"/m/{app_id}/x", token=who["token"])
    one, two = (r.json()["identity"] for r in (first, second))
    assert one["verified"] and two["verified"]
    # Claims come from a cache; each assertion still has its own request id and jti.
    assert one["claims"]["sub"] == two["claims"]["sub"]
    assert one["claims"]["rid"] == first.headers["X-Request-Id"] != two["claims"]["rid"]
    assert one["claims"]["jti"] != two["claims"]["jti"]
    await api.post("/api/v1/identity/logout", token=who["token"])
    resp = await api.get(f"/m/{app_id}/x", token=who["token"])
    assert resp.status_code == 401 and resp.json()["code"] == "invalid-token"


class _PlainUpstream(tornado.web.RequestHandler):
    """Answers without an ETag and ignores conditional headers."""

    def compute_etag(self) -> None:
        return None

    def get(self) -> None:
        self.write(b"hello")


async def test_the_gateway_adds_no_etag_and_no_304_of_its_own(api: Api, unit: Unit) -> None:
    [sock] = tornado.netutil.bind_sockets(0, "127.0.0.1", family=socket.AF_INET)
    server = tornado.httpserver.HTTPServer(tornado.web.Application([(r"/.*", _PlainUpstream)]))
    server.add_sockets([sock])
    try:
        app_id = await unit.live(f"http://127.0.0.1:{sock.getsockname()[1]}")
        who = await citizen(api)
        resp = await api.get(f"/m/{app_id}/x", token=who["token"])
        assert resp.status_code == 200 and "etag" not in resp.headers
        # What a framework would compute for that body: still the upstream's to answer.
        tag = f'"{hashlib.sha1(b"hello").hexdigest()}"'  # noqa: S324
        resp = await api.get(f"/m/{app_id}/x", token=who["token"], headers={"If-None-Match": tag})
        assert resp.status_code == 200 and resp.content == b"hello"
    finally:
        server.stop()


async def test_a_full_reload_keeps_unchanged_routes_and_replaces_changed_ones(
    api: Api, unit: Unit, echo_url: str
) -> None:
    routes = api.services.gateway.routes
    app_id = await unit.live(echo_url)
    await routes.load_all()
    before = routes.get(app_id)
    assert before is not None
    await routes.load_all()
    assert routes.get(app_id) is before  # same object: nothing new for the GC to scan
    await api.services.pool.execute(
        "UPDATE miniapps SET status = 'suspended' WHERE app_id = $1", app_id
    )
    await routes.load_all()
    after = routes.get(app_id)
    assert after is not before and after is not None and after.status == "suspended"
