"""``superapp payments trial-balance`` / ``reconcile`` on the test database, and the demo
merchant from ``superapp demo --json`` working through the OAuth token endpoint."""

from __future__ import annotations

import datetime as dt
import json
import subprocess

import pytest

from server.demo.payments import seed_payments
from tests.payments_support import BEIJING, Sims
from tests.support import Api, cli_for


def _cli(api: Api, sims: Sims, *args: str) -> subprocess.CompletedProcess[str]:
    channels = {"SUPERAPP_WECHATPAY_URL": sims.wechatpay, "SUPERAPP_ALIPAY_URL": sims.alipay}
    return cli_for(api.services.settings, "payments", *args, extra=channels)


@pytest.mark.asyncio
@pytest.mark.timeout(150)
async def test_trial_balance_and_reconcile_commands(api: Api, sims: Sims) -> None:
    out = _cli(api, sims, "trial-balance")
    assert out.returncode == 0, out.stderr
    tb = json.loads(out.stdout)
    assert tb["balanced"] and tb["total_debits_fen"] == tb["total_credits_fen"]
    today = dt.datetime.now(BEIJING).date().isoformat()
    out = _cli(api, sims, "reconcile", "--date", today)
    report = json.loads(out.stdout)
    assert out.returncode == 0, report
    assert {c["channel"] for c in report["channels"]} == {"wechatpay", "alipay"}
    bad = _cli(api, sims, "reconcile", "--date", "yesterday")
    assert bad.returncode == 2


@pytest.mark.asyncio
async def test_demo_merchant_gets_a_token_and_creates_orders(api: Api) -> None:
    svc = api.services
    unit, _ = await svc.orgs.upsert_unit(
        code="sz-gsdata", name_zh="政务服务数据管理局", name_en="Government Services and Data "
        "Management Bureau", kind="municipal", district_code="440300",
    )  # fmt: skip
    seeded = await seed_payments(svc, {"sz-gsdata": unit.id})
    again = await seed_payments(svc, {"sz-gsdata": unit.id})
    assert again["client"]["client_id"] == seeded["client"]["client_id"]  # idempotent
    assert set(seeded["simulators"]) == {"wechatpay", "alipay"}
    c = again["client"]
    resp = await api.post(
        "/oauth2/token",
        data={"grant_type": "client_credentials"},
        auth=(c["client_id"], c["client_secret"]),
    )
    assert resp.status_code == 200, resp.text
    token = resp.json()["access_token"]
    order = await api.post(
        "/api/v1/payments/orders",
        json={"out_trade_no": "demo-1", "amount_fen": 100, "subject": "Demo"},
        token=token,
    )
    assert order.status_code in (201, 409)
