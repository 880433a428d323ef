"""Money invariants under concurrency: two simultaneous callbacks for one payment credit
once; two simultaneous refunds with one out_refund_no refund once; concurrent refunds never
exceed what was paid."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio

from payments.channels.credentials import load_wechatpay_merchant
from payments.channels.wechatpay import WechatPayChannel
from payments.ports import ChannelOrder
from server.bootstrap import Services
from server.payments_wiring import credentials_dir
from tests.payments_support import (
    Sims,
    create_order,
    eventually,
    new_merchant,
    order_status,
    pay_and_confirm,
    start_payments,
    stop_payments,
    wechat_notification,
    wechat_transaction,
)
from tests.support import Api, random_phone


@pytest_asyncio.fixture(scope="module")
async def sims(services: Services, base_url: str) -> AsyncIterator[Sims]:
    started = await start_payments(services)
    yield started
    await stop_payments()


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_simultaneous_callbacks_credit_once(api: Api, sims: Sims) -> None:
    m = await new_merchant(api)
    order = await create_order(api, m, 4321, notify_url="http://127.0.0.1:9/merchant")
    # The channel's own callbacks go nowhere: the test sends the concurrent ones itself.
    creds = load_wechatpay_merchant(credentials_dir(api.services.settings, "wechatpay"))
    lossy = WechatPayChannel(
        api.services.http, creds, notify_url="http://127.0.0.1:9/lost", base_url=sims.wechatpay
    )
    payment = await lossy.create(ChannelOrder(order["id"], order["subject"], 4321))
    async with httpx.AsyncClient() as c:
        r = await c.post(sims.wechatpay + "/sim/confirm", json={"reference": payment.reference})
        assert r.status_code == 200
    trade = await lossy.query(order["id"])
    assert trade.transaction_id
    tx = wechat_transaction(api.services, order["id"], 4321, trade.transaction_id)
    # Two different notifications (a redelivery has a new signature) and two copies of one.
    first = wechat_notification(api.services, tx)
    calls = [
        first,
        first,
        wechat_notification(api.services, tx),
        wechat_notification(api.services, tx),
    ]
    answers = await asyncio.gather(
        *(
            api.post("/api/v1/payments/notify/wechatpay", content=body, headers=headers)
            for headers, body in calls
        )
    )
    assert all(a.status_code in (200, 204) for a in answers)
    assert (await order_status(api, m, order["id"]))["status"] == "paid"
    pool = api.services.pool
    payments = await pool.fetchval(
        "SELECT count(*) FROM ledger_transactions WHERE order_id = $1 AND kind = 'payment'",
        order["id"],
    )
    events = await pool.fetchval(
        "SELECT count(*) FROM pay_events WHERE order_id = $1 AND type = 'payment.succeeded'",
        order["id"],
    )
    clearing = await pool.fetchval(
        """SELECT sum(e.amount_fen) FROM ledger_entries e
             JOIN ledger_transactions t ON t.id = e.transaction_id
            WHERE t.order_id = $1 AND e.account_code = 'channel_clearing:wechatpay'""",
        order["id"],
    )
    assert (payments, events, clearing) == (1, 1, 4321)


async def _paid_order(api: Api, sims: Sims, amount: int) -> tuple[object, dict]:
    m = await new_merchant(api)
    order = await create_order(api, m, amount)
    citizen = (await api.sign_in(random_phone()))["access_token"]
    await pay_and_confirm(api, sims, citizen, order["id"], "alipay")

    async def paid() -> dict | None:
        o = await order_status(api, m, order["id"])
        return o if o["status"] == "paid" else None

    await eventually(paid)
    return m, order


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_simultaneous_refunds_with_one_out_refund_no_refund_once(
    api: Api, sims: Sims
) -> None:
    m, order = await _paid_order(api, sims, 3000)
    url = f"/api/v1/payments/orders/{order['id']}/refunds"
    body = {"out_refund_no": "same-1", "amount_fen": 1200, "reason": "duplicate click"}
    answers = await asyncio.gather(*(api.post(url, json=body, token=m.token) for _ in range(4)))  # type: ignore[attr-defined]
    assert sorted(a.status_code for a in answers) == [200, 200, 200, 201]
    assert len({a.json()["id"] for a in answers}) == 1
    done = await order_status(api, m, order["id"])  # type: ignore[arg-type]
    assert done["refunded_fen"] + done["refunding_fen"] == 1200
    async with httpx.AsyncClient() as c:
        trades = (await c.get(sims.alipay + "/sim/trades")).json()["trades"]
    [trade] = [t for t in trades if t["out_trade_no"] == order["id"]]
    assert len(trade["refunds"]) == 1  # the channel refunded once


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_concurrent_refunds_never_exceed_the_paid_amount(api: Api, sims: Sims) -> None:
    m, order = await _paid_order(api, sims, 1000)
    url = f"/api/v1/payments/orders/{order['id']}/refunds"
    answers = await asyncio.gather(
        *(
            api.post(url, json={"out_refund_no": f"r{i}", "amount_fen": 600}, token=m.token)  # type: ignore[attr-defined]
            for i in range(3)
        )
    )
    assert sorted(a.status_code for a in answers)[0] == 201
    assert [a.status_code for a in answers].count(201) == 1
    assert all(
        a.json()["code"] in ("refund-exceeds-paid", "refund-not-allowed")
        for a in answers
        if a.status_code != 201
    )
    done = await order_status(api, m, order["id"])  # type: ignore[arg-type]
    assert done["refunded_fen"] + done["refunding_fen"] == 600
