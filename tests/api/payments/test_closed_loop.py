"""The closed loop: a lost callback is made up by polling the channel; an unpaid order is
closed at expiry (at the channel too); a payment landing after the close is found by
reconciliation and refunded automatically."""

from __future__ import annotations

import datetime as dt

import httpx
import pytest

from payments.channels.alipay import AlipayChannel
from payments.channels.credentials import load_alipay_app, load_wechatpay_merchant
from payments.channels.wechatpay import WechatPayChannel
from payments.ports import ChannelOrder
from server.payments_wiring import credentials_dir
from tests.payments_support import (
    BEIJING,
    Sims,
    create_order,
    eventually,
    new_merchant,
    order_status,
)
from tests.support import Api, random_phone

LOST = "http://127.0.0.1:9/lost"  # a notify URL nobody listens on: every callback is lost


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_lost_callback_is_made_up_by_polling(api: Api, sims: Sims) -> None:
    m = await new_merchant(api)
    order = await create_order(api, m, 700)
    creds = load_wechatpay_merchant(credentials_dir(api.services.settings, "wechatpay"))
    lossy = WechatPayChannel(api.services.http, creds, notify_url=LOST, base_url=sims.wechatpay)
    payment = await lossy.create(ChannelOrder(order["id"], order["subject"], 700))
    citizen = (await api.sign_in(random_phone()))["access_token"]
    resp = await api.post(
        f"/api/v1/payments/orders/{order['id']}/pay", json={"channel": "wechatpay"}, token=citizen
    )
    assert resp.status_code == 200 and resp.json()["reference"] == payment.reference
    async with httpx.AsyncClient() as c:
        r = await c.post(sims.wechatpay + "/sim/confirm", json={"reference": payment.reference})
        assert r.status_code == 200

    async def paid() -> dict | None:
        o = await order_status(api, m, order["id"])
        return o if o["status"] == "paid" else None

    done = await eventually(paid)
    assert done["transaction_id"].startswith("42000")


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_unpaid_order_is_closed_at_expiry(api: Api, sims: Sims) -> None:
    m = await new_merchant(api)
    order = await create_order(api, m, 800)
    citizen = (await api.sign_in(random_phone()))["access_token"]
    resp = await api.post(
        f"/api/v1/payments/orders/{order['id']}/pay", json={"channel": "wechatpay"}, token=citizen
    )
    prepay = resp.json()["reference"]
    # Fault injection: let the clock run past the expiry.
    await api.services.pool.execute(
        "UPDATE pay_orders SET expires_at = now() - interval '1 s', next_check_at = now() "
        "WHERE id = $1",
        order["id"],
    )

    async def closed() -> dict | None:
        o = await order_status(api, m, order["id"])
        return o if o["status"] == "closed" else None

    await eventually(closed)
    async with httpx.AsyncClient() as c:
        r = await c.post(sims.wechatpay + "/sim/confirm", json={"reference": prepay})
    assert r.status_code == 409  # closed at the channel too: nobody can pay it any more


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_payment_after_close_is_refunded_by_reconciliation(api: Api, sims: Sims) -> None:
    m = await new_merchant(api)
    order = await create_order(api, m, 900)
    creds = load_alipay_app(credentials_dir(api.services.settings, "alipay"))
    lossy = AlipayChannel(
        api.services.http, creds, notify_url=LOST, gateway_url=sims.alipay + "/gateway.do"
    )
    payment = await lossy.create(ChannelOrder(order["id"], order["subject"], 900))
    async with httpx.AsyncClient() as c:
        r = await c.post(
            sims.alipay + "/sim/confirm",
            json={"reference": order["id"], "order_string": payment.client_params["order_string"]},
        )
        assert r.status_code == 200
    # The race WeChat warns about: we closed the order (our close reached nobody), yet the
    # payer paid and the callback was lost.
    await api.services.pool.execute(
        "UPDATE pay_orders SET status = 'closed', closed_at = now(), next_check_at = NULL "
        "WHERE id = $1",
        order["id"],
    )
    today = dt.datetime.now(BEIJING).date()
    report = await api.services.reconciler.run(today)
    [ali] = [c for c in report["channels"] if c["channel"] == "alipay"]
    [diff] = [d for d in ali["differences"] if d["order_id"] == order["id"]]
    assert diff["kind"] == "bill_only" and diff["explained"]
    assert "refunded automatically" in diff["action"]
    refunds = await api.services.payments.refunds(order["id"])
    assert [(r.kind, r.status, r.amount_fen) for r in refunds] == [("stray", "succeeded", 900)]
    assert (await order_status(api, m, order["id"]))["status"] == "closed"
    # Running it again finds everything matched and refunds nothing more.
    again = await api.services.reconciler.run(today)
    assert again["unexplained"] == 0
    assert len(await api.services.payments.refunds(order["id"])) == 1


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_callback_for_a_closed_order_is_refunded_not_credited(api: Api, sims: Sims) -> None:
    m = await new_merchant(api)
    order = await create_order(api, m, 1100)
    citizen = (await api.sign_in(random_phone()))["access_token"]
    resp = await api.post(
        f"/api/v1/payments/orders/{order['id']}/pay", json={"channel": "wechatpay"}, token=citizen
    )
    prepay = resp.json()["reference"]
    await api.services.pool.execute(
        "UPDATE pay_orders SET status = 'closed', closed_at = now(), next_check_at = NULL "
        "WHERE id = $1",
        order["id"],
    )
    async with httpx.AsyncClient() as c:
        r = await c.post(sims.wechatpay + "/sim/confirm", json={"reference": prepay})
        assert r.status_code == 200

    async def refunded() -> list | None:
        found = await api.services.payments.refunds(order["id"])
        return [r for r in found if r.status == "succeeded"] or None

    [refund] = await eventually(refunded)
    assert (refund.kind, refund.amount_fen) == ("stray", 1100)
    done = await order_status(api, m, order["id"])
    assert done["status"] == "closed" and done["transaction_id"] is None
    events = await api.services.pool.fetchval(
        "SELECT count(*) FROM pay_events WHERE order_id = $1 AND type = 'payment.succeeded'",
        order["id"],
    )
    assert events == 0
