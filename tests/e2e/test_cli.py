"""The operators' commands against the test database: grant, key rotation,
the SMS outbox and the demo seed."""

from __future__ import annotations

import json
import subprocess

import pytest

from server.settings import Settings
from tests.support import Api, cli_for, random_phone


def _cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return cli_for(settings, *args)


@pytest.mark.asyncio
async def test_admin_grant_gives_the_role(api: Api, settings: Settings) -> None:
    phone = random_phone()
    out = _cli(settings, "admin", "grant", "--phone", phone, "--role", "platform-admin")
    assert out.returncode == 0, out.stderr
    sub = json.loads(out.stdout)["sub"]
    tokens = await api.sign_in(phone)
    me = (await api.get("/api/v1/identity/me", token=tokens["access_token"])).json()
    assert me["sub"] == sub and "platform-admin" in me["roles"]
    bad = _cli(settings, "admin", "grant", "--phone", phone, "--role", "issuer", "--unit", "nope")
    assert bad.returncode == 1 and "not-found" in bad.stderr


@pytest.mark.asyncio
async def test_sms_outbox_prints_json_lines_newest_last(api: Api, settings: Settings) -> None:
    phone = random_phone()
    await api.sign_in(phone)
    await api.post("/api/v1/identity/otp", json={"phone": phone})
    out = _cli(settings, "sms", "outbox", "--phone", phone)
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(lines) == 2 and lines[0]["sent_at"] < lines[1]["sent_at"]
    assert lines[-1]["text"].count(await api.last_code(phone)) == 2


@pytest.mark.asyncio
async def test_key_rotation_keeps_old_tokens_valid(api: Api, settings: Settings) -> None:
    tokens = await api.sign_in(random_phone())
    old_kid = api.services.tokens.ring.active.kid
    out = _cli(settings, "keys", "rotate", "--now")
    assert out.returncode == 0, out.stderr
    new_kid = json.loads(out.stdout)["kid"]
    await api.services.reload_keys()
    jwks = (await api.get("/.well-known/jwks.json")).json()
    assert {old_kid, new_kid} <= {k["kid"] for k in jwks["keys"]}
    assert api.services.tokens.ring.active.kid == new_kid
    # A token signed by the retired key still verifies; new ones use the new key.
    me = await api.get("/api/v1/identity/me", token=tokens["access_token"])
    assert me.status_code == 200
    fresh = await api.sign_in(random_phone())
    import jwt

    assert jwt.get_unverified_header(fresh["access_token"])["kid"] == new_kid


def test_demo_json_shape_is_stable_and_idempotent(settings: Settings, services: object) -> None:
    first = _cli(settings, "demo", "--json", "--quiet")
    assert first.returncode == 0, first.stderr
    data = json.loads(first.stdout)
    for key in ("accounts", "clients", "apps"):
        assert key in data
    for name in (
        "platform_admin",
        "citizen",
        "unit_admin",
        "developer",
        "reviewer",
        "counter_staff",
        "issuer",
    ):
        account = data["accounts"][name]
        assert account["phone"].startswith("+86") and account["sub"].startswith("usr_")
    assert data["accounts"]["counter_staff"]["unit_id"].startswith("unt_")
    assert data["units"]["count"] == 76
    again = json.loads(_cli(settings, "demo", "--json", "--quiet").stdout)
    assert again["accounts"] == data["accounts"]
