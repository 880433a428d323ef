"""Channel callbacks: forged or stale ones are refused and credit nothing; an amount that
does not match is flagged and credits nothing; the reply is the channel's own."""

from __future__ import annotations

import datetime as dt
import secrets

import pytest

from tests.payments_support import (
    Sims,
    create_order,
    new_merchant,
    order_status,
    wechat_notification,
    wechat_transaction,
)
from tests.support import Api

NOTIFY = "/api/v1/payments/notify/"


@pytest.mark.asyncio
async def test_forged_callback_is_refused(api: Api, sims: Sims) -> None:
    m = await new_merchant(api)
    order = await create_order(api, m, 500)
    tx = wechat_transaction(api.services, order["id"], 500)
    headers, body = wechat_notification(api.services, tx)
    forged = body.replace(b'"TRANSACTION.SUCCESS"', b'"TRANSACTION.SUCCESS" ')
    resp = await api.post(NOTIFY + "wechatpay", content=forged, headers=headers)
    assert resp.status_code == 401 and resp.json()["code"] == "callback-bad-signature"
    no_headers = await api.post(NOTIFY + "wechatpay", content=body)
    assert no_headers.status_code == 401
    assert (await order_status(api, m, order["id"]))["status"] == "created"


@pytest.mark.asyncio
async def test_stale_callback_is_refused(api: Api, sims: Sims) -> None:
    m = await new_merchant(api)
    order = await create_order(api, m, 500)
    tx = wechat_transaction(api.services, order["id"], 500)
    old = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=10)
    headers, body = wechat_notification(api.services, tx, now=old)
    resp = await api.post(NOTIFY + "wechatpay", content=body, headers=headers)
    assert resp.status_code == 401 and resp.json()["code"] == "callback-stale"
    assert (await order_status(api, m, order["id"]))["status"] == "created"


@pytest.mark.asyncio
async def test_forged_alipay_form_is_refused(api: Api, sims: Sims) -> None:
    m = await new_merchant(api)
    order = await create_order(api, m, 500)
    form = (
        f"notify_id={secrets.token_hex(8)}&out_trade_no={order['id']}&trade_status=TRADE_SUCCESS"
        "&total_amount=5.00&trade_no=2026&sign=Zm9yZ2Vk&sign_type=RSA2"
    )
    resp = await api.post(
        NOTIFY + "alipay",
        content=form.encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert resp.status_code == 401
    assert (await order_status(api, m, order["id"]))["status"] == "created"


@pytest.mark.asyncio
async def test_amount_mismatch_is_flagged_and_not_credited(api: Api, sims: Sims) -> None:
    m = await new_merchant(api)
    order = await create_order(api, m, 500)
    tx = wechat_transaction(api.services, order["id"], 1)
    headers, body = wechat_notification(api.services, tx)
    resp = await api.post(NOTIFY + "wechatpay", content=body, headers=headers)
    assert resp.status_code in (200, 204)  # acknowledged: retrying would not change it
    assert (await order_status(api, m, order["id"]))["status"] == "created"
    flagged = await api.services.pool.fetchrow(
        "SELECT * FROM pay_anomalies WHERE transaction_id = $1", tx["transaction_id"]
    )
    assert flagged["kind"] == "amount_mismatch" and flagged["actual_fen"] == 1
    posted = await api.services.pool.fetchval(
        "SELECT count(*) FROM ledger_transactions WHERE order_id = $1 AND kind = 'payment'",
        order["id"],
    )
    assert posted == 0


@pytest.mark.asyncio
async def test_callback_for_an_unknown_order_credits_nothing(api: Api, sims: Sims) -> None:
    tx = wechat_transaction(api.services, "ord_unknown" + secrets.token_hex(4), 500)
    headers, body = wechat_notification(api.services, tx)
    resp = await api.post(NOTIFY + "wechatpay", content=body, headers=headers)
    assert resp.status_code in (200, 204)
    kind = await api.services.pool.fetchval(
        "SELECT kind FROM pay_anomalies WHERE transaction_id = $1", tx["transaction_id"]
    )
    assert kind == "unknown_order"


@pytest.mark.asyncio
async def test_optimistic_credit_writes_nothing_when_the_order_changed(
    api: Api, sims: Sims
) -> None:
    """The one-statement credit applies only to the order as read; otherwise nothing is
    written and the locked path decides (here: credits once; a replay is a duplicate)."""
    from payments.ports import ChannelTradeState

    svc = api.services.payments
    m = await new_merchant(api)
    order = await create_order(api, m, 700)
    async with svc.pool.acquire() as conn:
        seen = await svc.repo.get_order(conn, order["id"])
        assert seen is not None
        await conn.execute("UPDATE pay_orders SET updated_at = now() WHERE id = $1", seen.id)
        trade = ChannelTradeState(
            out_trade_no=seen.id,
            state="paid",
            channel_state="SUCCESS",
            transaction_id="42000" + secrets.token_hex(10),
            amount_fen=700,
            # Booked on a day no test reconciles: this trade is not in any simulator bill.
            paid_at=dt.datetime.now(dt.UTC) - dt.timedelta(days=10),
        )
        paid, journals, event_id, payload = svc._credit_parts(seen, "wechatpay", trade)
        await svc.ledger.ensure_accounts(conn, journals)
        note = ("wechatpay", "EV-" + secrets.token_hex(8), "credited")
        applied = await svc.repo.credit_if_unchanged(
            conn, seen, paid, journals, event_id, payload, note=note
        )
        assert applied is False
        assert (
            await conn.fetchval(
                "SELECT count(*) FROM pay_notifications WHERE notification_id = $1", note[1]
            )
            == 0
        )
        assert (
            await conn.fetchval(
                "SELECT count(*) FROM ledger_transactions WHERE order_id = $1", seen.id
            )
            == 0
        )
        assert await conn.fetchval("SELECT status FROM pay_orders WHERE id = $1", seen.id) == (
            "created"
        )
    assert await svc.apply_trade("wechatpay", trade, note[1]) == "credited"
    assert await svc.apply_trade("wechatpay", trade, note[1]) == "duplicate"
    assert (await order_status(api, m, order["id"]))["status"] == "paid"
    async with svc.pool.acquire() as conn:
        assert (
            await conn.fetchval(
                "SELECT count(*) FROM ledger_transactions WHERE order_id = $1 AND kind = 'payment'",
                seen.id,
            )
            == 1
        )
