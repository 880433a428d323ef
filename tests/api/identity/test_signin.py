"""Phone sign-in with SMS codes, tokens, refresh rotation, sessions, logout."""

from __future__ import annotations

import asyncio

import pytest

from tests.support import Api

pytestmark = pytest.mark.asyncio


async def test_sign_in_and_me(api: Api, phone: str) -> None:
    tokens = await api.sign_in(phone)
    assert tokens["token_type"] == "Bearer" and tokens["expires_in"] == 600
    me = (await api.get("/api/v1/identity/me", token=tokens["access_token"])).json()
    assert me["sub"].startswith("usr_")
    assert me["phone"] == f"+86 {phone[3:6]}****{phone[-4:]}"
    assert me["assurance_level"] == "L1" and me["roles"] == []
    # Signing in again gives the same account.
    again = await api.sign_in(phone)
    me2 = (await api.get("/api/v1/identity/me", token=again["access_token"])).json()
    assert me2["sub"] == me["sub"]


async def test_phone_is_normalised(api: Api, phone: str) -> None:
    local = phone[3:]  # without +86
    resp = await api.post("/api/v1/identity/otp", json={"phone": local})
    assert resp.status_code == 202
    code = await api.last_code(phone)
    resp = await api.post(
        "/api/v1/identity/token", json={"grant_type": "otp", "phone": phone, "code": code}
    )
    assert resp.status_code == 200


async def test_malformed_phone_names_the_field(api: Api) -> None:
    resp = await api.post("/api/v1/identity/otp", json={"phone": "12345"})
    assert resp.status_code == 422
    assert resp.json()["field"] == "phone"
    resp = await api.post("/api/v1/identity/otp", json={})
    assert resp.status_code == 422


async def test_wrong_code_then_too_many_attempts(api: Api, phone: str) -> None:
    await api.post("/api/v1/identity/otp", json={"phone": phone})
    code = await api.last_code(phone)
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    body = {"grant_type": "otp", "phone": phone, "code": wrong}
    for left in (4, 3, 2, 1, 0):
        resp = await api.post("/api/v1/identity/token", json=body)
        assert resp.status_code == 401
        assert resp.json()["code"] == "invalid-otp"
        assert resp.json()["attempts_left"] == left
    body["code"] = code  # even the right code is refused once the attempts are spent
    resp = await api.post("/api/v1/identity/token", json=body)
    assert resp.status_code == 429
    assert resp.json()["code"] == "too-many-attempts"
    assert int(resp.headers["Retry-After"]) > 0


async def test_code_is_single_use(api: Api, phone: str) -> None:
    await api.post("/api/v1/identity/otp", json={"phone": phone})
    code = await api.last_code(phone)
    body = {"grant_type": "otp", "phone": phone, "code": code}
    results = await asyncio.gather(
        *(api.post("/api/v1/identity/token", json=body) for _ in range(4))
    )
    assert sorted(r.status_code for r in results) == [200, 401, 401, 401]


async def test_resend_cooldown(api: Api, phone: str) -> None:
    assert (await api.post("/api/v1/identity/otp", json={"phone": phone})).status_code == 202
    resp = await api.post("/api/v1/identity/otp", json={"phone": phone})
    assert resp.status_code == 429
    assert resp.json()["code"] == "otp-cooldown"
    assert 0 < int(resp.headers["Retry-After"]) <= 60


async def test_codes_are_stored_only_as_hashes(api: Api, phone: str) -> None:
    await api.post("/api/v1/identity/otp", json={"phone": phone})
    code = await api.last_code(phone)
    redis = api.services.redis
    async for key in redis.scan_iter(match="otp:*"):
        if await redis.type(key) == b"hash":
            assert code.encode() not in b"".join((await redis.hgetall(key)).values())


async def test_refresh_rotates_and_reuse_revokes_the_session(api: Api, phone: str) -> None:
    tokens = await api.sign_in(phone)
    first = tokens["refresh_token"]
    resp = await api.post(
        "/api/v1/identity/token", json={"grant_type": "refresh_token", "refresh_token": first}
    )
    assert resp.status_code == 200
    second = resp.json()["refresh_token"]
    assert second != first
    # Reusing the rotated token revokes the whole session, including the new token.
    resp = await api.post(
        "/api/v1/identity/token", json={"grant_type": "refresh_token", "refresh_token": first}
    )
    assert resp.status_code == 401 and resp.json()["code"] == "refresh-token-reused"
    resp = await api.post(
        "/api/v1/identity/token", json={"grant_type": "refresh_token", "refresh_token": second}
    )
    assert resp.status_code == 401 and resp.json()["code"] == "session-revoked"
    # The ended session's access token is refused too; a new sign-in shows the event.
    assert (await api.get("/api/v1/identity/me", token=tokens["access_token"])).status_code == 401
    again = await api.sign_in(phone)
    events = await api.get("/api/v1/identity/me/security-events", token=again["access_token"])
    assert "refresh-token-reused" in [e["kind"] for e in events.json()["events"]]


async def test_two_simultaneous_refreshes_yield_exactly_one_success(api: Api, phone: str) -> None:
    tokens = await api.sign_in(phone)
    body = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    results = await asyncio.gather(
        *(api.post("/api/v1/identity/token", json=body) for _ in range(2))
    )
    assert sorted(r.status_code for r in results) == [200, 401]


async def test_unknown_refresh_token_and_grant(api: Api) -> None:
    resp = await api.post(
        "/api/v1/identity/token", json={"grant_type": "refresh_token", "refresh_token": "rt_nope"}
    )
    assert resp.status_code == 401 and resp.json()["code"] == "invalid-refresh-token"
    resp = await api.post("/api/v1/identity/token", json={"grant_type": "password"})
    assert resp.status_code == 400 and resp.json()["code"] == "unsupported-grant-type"


async def test_sessions_are_listed_and_revocable_per_device(api: Api, phone: str) -> None:
    phone_tokens = await api.sign_in(phone)
    tablet = await api.sign_in(phone)
    token = phone_tokens["access_token"]
    sessions = (await api.get("/api/v1/identity/me/sessions", token=token)).json()["sessions"]
    assert len(sessions) == 2
    assert sum(s["current"] for s in sessions) == 1
    other = next(s for s in sessions if not s["current"])
    resp = await api.delete(f"/api/v1/identity/me/sessions/{other['id']}", token=token)
    assert resp.status_code == 204
    resp = await api.post(
        "/api/v1/identity/token",
        json={"grant_type": "refresh_token", "refresh_token": tablet["refresh_token"]},
    )
    assert resp.status_code == 401
    assert len((await api.get("/api/v1/identity/me/sessions", token=token)).json()["sessions"]) == 1


async def test_cannot_revoke_someone_elses_session(api: Api, phone: str) -> None:
    mine = await api.sign_in(phone)
    from tests.support import random_phone

    theirs = await api.sign_in(random_phone())
    their_sessions = await api.get("/api/v1/identity/me/sessions", token=theirs["access_token"])
    sid = their_sessions.json()["sessions"][0]["id"]
    resp = await api.delete(f"/api/v1/identity/me/sessions/{sid}", token=mine["access_token"])
    assert resp.status_code == 404


async def test_logout_ends_the_session(api: Api, phone: str) -> None:
    tokens = await api.sign_in(phone)
    resp = await api.post("/api/v1/identity/logout", token=tokens["access_token"])
    assert resp.status_code == 204
    resp = await api.post(
        "/api/v1/identity/token",
        json={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
    )
    assert resp.status_code == 401


async def test_security_log_shows_sign_ins_and_failures(api: Api, phone: str) -> None:
    tokens = await api.sign_in(phone)
    events = (
        await api.get("/api/v1/identity/me/security-events", token=tokens["access_token"])
    ).json()["events"]
    assert events[0]["kind"] == "sign-in"
    assert events[0]["detail"]["method"] == "sms-otp"


async def test_me_needs_a_token(api: Api) -> None:
    resp = await api.get("/api/v1/identity/me")
    assert resp.status_code == 401 and resp.json()["code"] == "unauthorized"
