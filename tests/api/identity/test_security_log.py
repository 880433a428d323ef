"""The security log: failed codes on a citizen's number, consent changes, and
that the log cannot be changed afterwards."""

from __future__ import annotations

import asyncpg
import pytest

from tests.support import Api

pytestmark = pytest.mark.asyncio


async def _kinds(api: Api, token: str) -> list[str]:
    resp = await api.get("/api/v1/identity/me/security-events", token=token)
    return [e["kind"] for e in resp.json()["events"]]


async def test_wrong_codes_on_my_number_show_in_my_log(api: Api, phone: str) -> None:
    await api.sign_in(phone)
    await api.post("/api/v1/identity/otp", json={"phone": phone})
    code = await api.last_code(phone)
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    resp = await api.post(
        "/api/v1/identity/token", json={"grant_type": "otp", "phone": phone, "code": wrong}
    )
    assert resp.status_code == 401
    resp = await api.post(
        "/api/v1/identity/token", json={"grant_type": "otp", "phone": phone, "code": code}
    )
    tokens = resp.json()
    resp = await api.get("/api/v1/identity/me/security-events", token=tokens["access_token"])
    events = resp.json()["events"]
    failed = [e for e in events if e["kind"] == "sign-in-failed"]
    assert failed and failed[0]["detail"] == {"reason": "wrong-code"}
    assert code not in resp.text and wrong not in resp.text


async def test_consent_changes_show_in_my_log(api: Api, phone: str) -> None:
    tokens = await api.sign_in(phone)
    sub = (await api.get("/api/v1/identity/me", token=tokens["access_token"])).json()["sub"]
    client, _ = await api.services.clients.create(
        unit_id=await api.unit(),
        name="Log test app",
        app_id=None,
        redirect_uris=("https://app.example.cn/cb",),
        allowed_scopes=("openid", "phone"),
    )
    await api.services.consents.grant(sub, client.client_id, ["openid", "phone"])
    resp = await api.delete(
        f"/api/v1/identity/me/consents/{client.client_id}", token=tokens["access_token"]
    )
    assert resp.status_code == 204
    kinds = await _kinds(api, tokens["access_token"])
    assert kinds.index("consent-revoked") < kinds.index("consent-granted")  # newest first


async def test_the_log_is_append_only(api: Api, phone: str) -> None:
    await api.sign_in(phone)
    with pytest.raises(asyncpg.RaiseError, match="append-only"):
        await api.services.pool.execute("UPDATE security_events SET kind = 'x' WHERE id > 0")
    with pytest.raises(asyncpg.RaiseError, match="append-only"):
        await api.services.pool.execute("DELETE FROM security_events WHERE id > 0")
