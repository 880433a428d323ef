"""Demo OAuth client: a confidential client of the Government Services and
Data Management Bureau with a loopback redirect URI, for trying the
authorisation-code flow by hand (docs/oauth.md).

The secret is stored hashed, so a re-run rotates it (the previous one keeps
working for a day) and prints the new one: ``superapp demo --json`` always
shows a secret that works.
"""

from __future__ import annotations

from typing import Any

from server.bootstrap import Services

DEMO_UNIT = "sz-gsdata"
DEMO_NAME = "示例小程序 Demo mini-app"
DEMO_REDIRECT = "http://127.0.0.1:8765/callback"


async def seed_oauth_clients(svc: Services, units: dict[str, str]) -> dict[str, Any]:
    unit_id = units[DEMO_UNIT]
    async with svc.pool.acquire() as conn:
        existing = await svc.oidc.repo.client_by_name(conn, unit_id, DEMO_NAME)
    if existing is None:
        client, secret = await svc.clients.create(
            unit_id=unit_id, name=DEMO_NAME, redirect_uris=(DEMO_REDIRECT,)
        )
    else:
        client, secret = existing, await svc.clients.rotate_secret(existing.client_id)
    issuer = svc.settings.issuer
    return {
        "demo_app": {
            "client_id": client.client_id,
            "client_secret": secret,
            "unit_id": unit_id,
            "redirect_uri": DEMO_REDIRECT,
            "scope": "openid profile phone",
            "discovery": f"{issuer}/.well-known/openid-configuration",
        }
    }
