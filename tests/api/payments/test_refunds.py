"""Refund rules: only paid orders, never more than paid, a minute apart, idempotent on
out_refund_no (a reused number with another amount is refused); full refund ends ``refunded``."""

from __future__ import annotations

import pytest

from tests.payments_support import (
    Sims,
    create_order,
    eventually,
    new_merchant,
    order_status,
    pay_and_confirm,
)
from tests.support import Api, random_phone


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_refund_rules(api: Api, sims: Sims) -> None:
    m = await new_merchant(api)
    order = await create_order(api, m, 1000)
    url = f"/api/v1/payments/orders/{order['id']}/refunds"
    unpaid = await api.post(url, json={"out_refund_no": "a", "amount_fen": 1}, token=m.token)
    assert unpaid.status_code == 409 and unpaid.json()["code"] == "refund-not-allowed"

    citizen = (await api.sign_in(random_phone()))["access_token"]
    await pay_and_confirm(api, sims, citizen, order["id"], "alipay")

    async def paid() -> dict | None:
        o = await order_status(api, m, order["id"])
        return o if o["status"] == "paid" else None

    await eventually(paid)
    too_much = await api.post(url, json={"out_refund_no": "a", "amount_fen": 1001}, token=m.token)
    assert too_much.status_code == 422 and too_much.json()["code"] == "refund-exceeds-paid"
    full = await api.post(url, json={"out_refund_no": "a", "amount_fen": 1000}, token=m.token)
    assert full.status_code == 201
    reused = await api.post(url, json={"out_refund_no": "a", "amount_fen": 999}, token=m.token)
    assert reused.status_code == 422 and reused.json()["code"] == "refund-conflict"
    done = await order_status(api, m, order["id"])
    assert done["status"] == "refunded" and done["refunded_fen"] == 1000
    more = await api.post(url, json={"out_refund_no": "b", "amount_fen": 1}, token=m.token)
    assert more.status_code == 422 and more.json()["code"] == "refund-exceeds-paid"


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_refunds_of_one_order_are_a_minute_apart(api: Api, sims: Sims) -> None:
    m = await new_merchant(api)
    order = await create_order(api, m, 1000)
    citizen = (await api.sign_in(random_phone()))["access_token"]
    await pay_and_confirm(api, sims, citizen, order["id"], "wechatpay")

    async def paid() -> dict | None:
        o = await order_status(api, m, order["id"])
        return o if o["status"] == "paid" else None

    await eventually(paid)
    url = f"/api/v1/payments/orders/{order['id']}/refunds"
    first = await api.post(url, json={"out_refund_no": "one", "amount_fen": 100}, token=m.token)
    assert first.status_code == 201
    second = await api.post(url, json={"out_refund_no": "two", "amount_fen": 100}, token=m.token)
    assert second.status_code == 409 and second.json()["code"] == "refund-not-allowed"
    assert 1 <= int(second.headers["Retry-After"]) <= 61


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_switching_channels_closes_the_first_trade(api: Api, sims: Sims) -> None:
    import httpx

    m = await new_merchant(api)
    order = await create_order(api, m, 1500)
    citizen = (await api.sign_in(random_phone()))["access_token"]
    url = f"/api/v1/payments/orders/{order['id']}/pay"
    wx = await api.post(url, json={"channel": "wechatpay"}, token=citizen)
    assert wx.status_code == 200
    await pay_and_confirm(api, sims, citizen, order["id"], "alipay")
    async with httpx.AsyncClient() as c:
        late = await c.post(
            sims.wechatpay + "/sim/confirm", json={"reference": wx.json()["reference"]}
        )
    assert late.status_code == 409  # the WeChat trade was closed before Alipay opened

    async def paid() -> dict | None:
        o = await order_status(api, m, order["id"])
        return o if o["status"] == "paid" else None

    assert (await eventually(paid))["channel"] == "alipay"
