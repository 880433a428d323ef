"""Operations endpoints and the error contract every route shares."""

from __future__ import annotations

import pytest
from openapi_spec_validator import validate

from server.app import ROUTES
from server.http import implemented_methods
from tests.support import Api, random_phone

pytestmark = pytest.mark.asyncio


async def test_healthz_and_readyz(api: Api) -> None:
    assert (await api.get("/healthz")).json() == {"status": "ok"}
    ready = (await api.get("/readyz")).json()
    assert ready["status"] == "ready"
    assert ready["checks"] == {"postgres": "ok", "redis": "ok"}


async def test_request_id_is_echoed_or_assigned(api: Api) -> None:
    resp = await api.get("/healthz", headers={"X-Request-Id": "abc-123"})
    assert resp.headers["X-Request-Id"] == "abc-123"
    resp = await api.get("/healthz", headers={"X-Request-Id": "bad id with spaces"})
    assert resp.headers["X-Request-Id"].startswith("req_")


async def test_unknown_route_is_a_404_problem(api: Api) -> None:
    resp = await api.get("/no/such/thing")
    assert resp.status_code == 404
    assert resp.json()["code"] == "not-found"


async def test_wrong_method_is_a_405_problem_with_allow(api: Api) -> None:
    resp = await api.delete("/api/v1/identity/otp")
    assert resp.status_code == 405
    assert resp.json()["code"] == "method-not-allowed"
    assert resp.headers["Allow"] == "POST"


async def test_malformed_json_is_400(api: Api) -> None:
    resp = await api.post(
        "/api/v1/identity/otp", content=b'{"phone": ', headers={"Content-Type": "application/json"}
    )
    assert resp.status_code == 400
    assert resp.json()["code"] == "invalid-json"
    resp = await api.post("/api/v1/identity/otp", json=["not", "an", "object"])
    assert resp.json()["code"] == "invalid-json"


async def test_malformed_multipart_is_400(api: Api) -> None:
    tokens = await api.sign_in(random_phone())
    resp = await api.post(
        "/api/v1/identity/me/face",
        token=tokens["access_token"],
        content=b"x",
        headers={"Content-Type": "multipart/form-data"},
    )
    assert resp.status_code == 400
    assert resp.json()["code"] == "invalid-form"


async def test_wrong_content_type_is_415(api: Api) -> None:
    resp = await api.post(
        "/api/v1/identity/otp", content=b"phone=1", headers={"Content-Type": "text/plain"}
    )
    assert resp.status_code == 415
    assert resp.json()["code"] == "unsupported-media-type"


async def test_body_over_the_cap_is_413(api: Api) -> None:
    big = b'{"phone": "' + b"1" * (api.services.settings.max_body_bytes + 10) + b'"}'
    resp = await api.post(
        "/api/v1/identity/otp", content=big, headers={"Content-Type": "application/json"}
    )
    assert resp.status_code == 413
    assert resp.json()["code"] == "payload-too-large"


async def test_chunked_body_over_the_cap_is_413(api: Api) -> None:
    cap = api.services.settings.max_body_bytes

    async def chunks():  # no Content-Length: the cap is enforced while streaming
        for _ in range(3):
            yield b"x" * (cap // 2 + 1)

    resp = await api.post(
        "/api/v1/identity/otp", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert resp.status_code == 413


async def test_metrics_count_requests_by_route_template(api: Api) -> None:
    await api.get("/api/v1/units/unt_doesnotexist")
    text = (await api.get("/metrics")).text
    assert 'route="/api/v1/units/{unit_id}"' in text
    assert "superapp_http_request_duration_seconds_bucket" in text


async def test_openapi_is_valid_and_lists_every_route(api: Api) -> None:
    spec = (await api.get("/openapi.json")).json()
    validate(spec)
    for r in ROUTES:
        assert r.openapi_path in spec["paths"], r.template
        item = spec["paths"][r.openapi_path]
        for method in implemented_methods(r.handler):
            assert method.lower() in item, (r.template, method)


async def test_docs_page_is_served_locally(api: Api) -> None:
    resp = await api.get("/docs")
    assert resp.status_code == 200
    assert "openapi.json" in resp.text
    assert "https://" not in resp.text.split("<script>")[1]  # no CDN


async def test_jwks_publishes_the_active_key(api: Api) -> None:
    jwks = (await api.get("/.well-known/jwks.json")).json()
    kids = [k["kid"] for k in jwks["keys"]]
    assert api.services.tokens.ring.active.kid in kids
    assert all("d" not in k for k in jwks["keys"])  # never a private part


async def test_unicode_digits_are_not_numbers(api: Api) -> None:
    # "²".isdigit() is True in Python but int("²") fails: each once answered 500.
    for page in ("²", "--5", "٣", "\x05", " 2"):
        resp = await api.get("/api/v1/catalog", params={"page": page})
        assert resp.status_code == 422 and resp.json()["field"] == "page", page
    resp = await api.get("/api/v1/ecert/status-lists/²")
    assert resp.status_code == 404


async def test_strings_postgresql_cannot_store_are_refused(api: Api) -> None:
    # NUL and lone surrogates decode as JSON but have no place in PostgreSQL text.
    for body in (b'{"phone": "+86\\u0000138"}', b'{"phone": "\\ud800"}', b'{"\\u0000": 1}'):
        resp = await api.post(
            "/api/v1/identity/otp", content=body, headers={"Content-Type": "application/json"}
        )
        assert resp.status_code == 400 and resp.json()["code"] == "invalid-json", body
    resp = await api.post(
        "/oauth2/token",
        content=b"grant_type=client_credentials&client_id=a%00b&client_secret=x",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert resp.status_code == 400
    tokens = await api.sign_in(random_phone())
    resp = await api.get("/api/v1/ecert/wallet/crt_%00", token=tokens["access_token"])
    assert resp.status_code == 404 and resp.json()["code"] == "not-found"
