"""``superapp clients create`` and the demo client."""

from __future__ import annotations

import json
import subprocess

import pytest

from identity.errors import ValidationError
from identity.oauth.redirects import validate_redirect_uri
from server.demo.oauth import DEMO_REDIRECT, seed_oauth_clients
from server.settings import Settings
from tests.support import Api, cli_for


def _cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return cli_for(settings, "clients", "create", *args)


@pytest.mark.asyncio
async def test_clients_create_prints_the_secret_once(api: Api) -> None:
    unit = await api.unit()
    out = _cli(
        api.services.settings,
        "--unit",
        unit,
        "--name",
        "Library app",
        "--redirect-uri",
        "https://lib.example/cb",
        "--scope",
        "real_name",
    )
    assert out.returncode == 0, out.stderr
    made = json.loads(out.stdout)
    assert made["client_id"].startswith("cli_") and made["client_secret"].startswith("cs_")
    client = await api.services.clients.authenticate(made["client_id"], made["client_secret"])
    assert client.redirect_uris == ("https://lib.example/cb",)
    assert client.allowed_scopes == ("real_name",) and client.unit_id == unit

    public = _cli(api.services.settings, "--unit", unit, "--name", "SPA", "--public")
    assert public.returncode == 0 and json.loads(public.stdout)["client_secret"] is None
    bad = _cli(
        api.services.settings, "--unit", unit, "--name", "x", "--redirect-uri", "http://evil/cb"
    )
    assert bad.returncode == 1 and "Redirect URI 'http://evil/cb' must be" in bad.stderr
    missing = _cli(api.services.settings, "--unit", "no-such-unit", "--name", "x")
    assert missing.returncode == 1 and "not-found" in missing.stderr


def test_redirect_uri_rules() -> None:
    for ok in ("https://a.example/cb", "http://127.0.0.1:8765/callback", "cn.gov.sz.app:/cb"):
        assert validate_redirect_uri(ok) == ok
    for bad in ("http://a.example/cb", "https://a.example/cb#x", "https://*.a.example/", "cb"):
        with pytest.raises(ValidationError):
            validate_redirect_uri(bad)


@pytest.mark.asyncio
async def test_demo_client_is_idempotent_and_its_secret_works(api: Api) -> None:
    unit = await api.unit()
    first = (await seed_oauth_clients(api.services, {"sz-gsdata": unit}))["demo_app"]
    second = (await seed_oauth_clients(api.services, {"sz-gsdata": unit}))["demo_app"]
    assert first["client_id"] == second["client_id"] and second["redirect_uri"] == DEMO_REDIRECT
    for secret in (first["client_secret"], second["client_secret"]):
        assert await api.services.clients.authenticate(second["client_id"], secret)
