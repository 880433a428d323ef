"""Demo payments data: a merchant (a unit's server with a client-credentials client) and
the channel simulators' base URLs, for ``superapp demo --json``."""

from __future__ import annotations

from typing import Any

from server.bootstrap import Services
from server.sims.launcher import SIMULATORS

MERCHANT_NAME = "Demo merchant (government service fees)"
MERCHANT_UNIT = "sz-gsdata"


async def seed_payments(svc: Services, units: dict[str, str]) -> dict[str, Any]:
    unit_id = units[MERCHANT_UNIT]
    client_id = await svc.pool.fetchval(
        "SELECT client_id FROM oauth_clients WHERE unit_id = $1 AND name = $2 LIMIT 1",
        unit_id,
        MERCHANT_NAME,
    )
    if client_id is None:
        client, secret = await svc.clients.create(
            unit_id=unit_id, name=MERCHANT_NAME, allowed_scopes=("payments",)
        )
        client_id = client.client_id
    else:
        # Secrets are stored hashed: hand out a fresh one (the old one stays valid a day).
        secret = await svc.clients.rotate_secret(client_id)
    await svc.payments.merchant(client_id, unit_id, MERCHANT_NAME)
    settings = svc.settings
    return {
        "client": {"client_id": client_id, "client_secret": secret, "unit_id": unit_id},
        "simulators": {
            "wechatpay": settings.wechatpay_url
            or f"http://127.0.0.1:{SIMULATORS['wechatpay'].port}",
            "alipay": settings.alipay_url or f"http://127.0.0.1:{SIMULATORS['alipay'].port}",
        },
    }
