"""Channel callbacks: forged or stale ones are refused and credit nothing; an amount that
does not match is flagged and credits nothing; the reply is the channel's own."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
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
async def test_one_statement_credit_writes_nothing_unless_the_order_is_open_and_unchanged(
    api: Api, sims: Sims
) -> None:
    """The callback's one-statement credit applies only to an open order of that amount
    whose merchant account exists, and not to one changed while it ran; otherwise nothing
    is written and the locked path decides (here: credits once; a replay is a duplicate)."""
    from payments.ports import ChannelTradeState

    svc = api.services.payments
    m = await new_merchant(api)
    order = await create_order(api, m, 700)
    trade = ChannelTradeState(
        out_trade_no=order["id"],
        state="paid",
        channel_state="SUCCESS",
        transaction_id="42000" + secrets.token_hex(10),
        amount_fen=700,
        # Booked on a day no test reconciles: this trade is not in any simulator bill.
        paid_at=dt.datetime.now(dt.UTC) - dt.timedelta(days=10),
    )
    note = ("wechatpay", "EV-" + secrets.token_hex(8), "credited")

    async def credit(conn: object, amount: int = 700) -> bool:
        return await svc.repo.credit_open_order(
            conn,  # type: ignore[arg-type]
            order_id=order["id"],
            channel="wechatpay",
            transaction_id=trade.transaction_id or "",
            amount_fen=amount,
            paid_at=trade.paid_at or dt.datetime.now(dt.UTC),
            notification_id=note[1],
            event_id="evt_" + secrets.token_hex(8),
            event_created_at="2026-01-01T00:00:00Z",
        )

    async with svc.pool.acquire() as conn, svc.pool.acquire() as other:
        await svc.ledger.ensure_account_codes(
            conn, ["channel_clearing:wechatpay", "pending_clearing"]
        )
        assert await credit(conn) is False  # no merchant_payable account yet (never paid)
        await svc.ledger.ensure_account_codes(conn, [f"merchant_payable:{m.client_id}"])
        assert await credit(conn, amount=701) is False  # not the order's amount
        # Changed by another transaction while the credit waits for the row: nothing written.
        async with other.transaction():
            await other.execute(
                "UPDATE pay_orders SET updated_at = now() WHERE id = $1", order["id"]
            )
            waiting = asyncio.ensure_future(credit(conn))
            await asyncio.sleep(0.3)
            assert not waiting.done()
        assert await waiting is False
        for table, column in (
            ("pay_notifications", "order_id"),
            ("ledger_transactions", "order_id"),
            ("pay_events", "order_id"),
        ):
            count = await conn.fetchval(
                f"SELECT count(*) FROM {table} WHERE {column} = $1",  # noqa: S608
                order["id"],
            )
            assert count == 0, table
        assert (
            await conn.fetchval("SELECT status FROM pay_orders WHERE id = $1", order["id"])
            == "created"
        )
    assert await svc.apply_trade("wechatpay", trade, note[1]) == "credited"
    assert await svc.apply_trade("wechatpay", trade, note[1]) == "duplicate"
    assert (await order_status(api, m, order["id"]))["status"] == "paid"
    async with svc.pool.acquire() as conn:
        assert (
            await conn.fetchval(
                "SELECT count(*) FROM ledger_transactions WHERE order_id = $1 AND kind = 'payment'",
                order["id"],
            )
            == 1
        )


@pytest.mark.asyncio
async def test_one_statement_credit_of_a_paying_order_books_like_the_locked_path(
    api: Api, sims: Sims
) -> None:
    """After pay (the hold posted), the one-statement credit voids the hold, posts the
    payment, records the notification and writes the event with the paid order's view."""
    from payments.ports import ChannelTradeState
    from tests.api.payments.test_story import api_phone

    svc = api.services.payments
    m = await new_merchant(api)
    order = await create_order(api, m, 900, notify_url="http://127.0.0.1:9/hook")
    citizen = (await api.sign_in(api_phone()))["access_token"]
    resp = await api.post(
        f"/api/v1/payments/orders/{order['id']}/pay", json={"channel": "alipay"}, token=citizen
    )
    assert resp.status_code == 200, resp.text
    trade = ChannelTradeState(
        out_trade_no=order["id"],
        state="paid",
        channel_state="TRADE_SUCCESS",
        transaction_id="2026" + secrets.token_hex(10),
        amount_fen=900,
        paid_at=dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(days=10),
    )
    notification_id = secrets.token_hex(16)
    assert await svc._credit_fast("alipay", trade, notification_id) is True
    async with svc.pool.acquire() as conn:
        paid = await svc.repo.get_order(conn, order["id"])
        assert paid is not None and paid.status == "paid" and paid.channel == "alipay"
        assert paid.transaction_id == trade.transaction_id and paid.paid_at == trade.paid_at
        entries = await conn.fetch(
            """SELECT t.kind, t.idempotency_key, t.external_id, e.account_code, e.amount_fen
                 FROM ledger_transactions t JOIN ledger_entries e ON e.transaction_id = t.id
                WHERE t.order_id = $1 ORDER BY t.kind, e.amount_fen""",
            order["id"],
        )
        assert [(r["kind"], r["account_code"], r["amount_fen"]) for r in entries] == [
            ("hold", f"pending_payable:{m.client_id}", -900),
            ("hold", "pending_clearing", 900),
            ("payment", f"merchant_payable:{m.client_id}", -900),
            ("payment", "channel_clearing:alipay", 900),
            ("void", "pending_clearing", -900),
            ("void", f"pending_payable:{m.client_id}", 900),
        ]
        keys = {r["kind"]: (r["idempotency_key"], r["external_id"]) for r in entries}
        assert keys["payment"] == (f"payment:alipay:{trade.transaction_id}", trade.transaction_id)
        assert keys["void"] == (f"void:{order['id']}", None)
        outcome = await conn.fetchval(
            """SELECT outcome FROM pay_notifications
                WHERE channel = 'alipay' AND notification_id = $1""",
            notification_id,
        )
        assert outcome == "credited"
        event = await conn.fetchrow("SELECT * FROM pay_events WHERE order_id = $1", order["id"])
    payload = (
        json.loads(event["payload"]) if isinstance(event["payload"], str) else event["payload"]
    )
    assert event["type"] == "payment.succeeded" and event["url"] == "http://127.0.0.1:9/hook"
    assert payload["id"] == event["id"] and payload["type"] == "payment.succeeded"
    assert payload["data"] == {"order": paid.public()}
    # A replay is a duplicate on the locked path and changes nothing.
    assert await svc.apply_trade("alipay", trade, notification_id) == "duplicate"
