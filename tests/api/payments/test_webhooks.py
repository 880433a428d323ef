"""Merchant notifications: retried on WeChat's (scaled) schedule, dead-lettered, redelivered
on request with the same event id."""

from __future__ import annotations

import pytest

from tests.payments_support import (
    Receiver,
    Sims,
    create_order,
    eventually,
    new_merchant,
    pay_and_confirm,
)
from tests.support import Api, random_phone


@pytest.mark.asyncio
@pytest.mark.timeout(90)
async def test_failing_endpoint_dead_letters_then_redelivers(
    api: Api, sims: Sims, receiver: Receiver
) -> None:
    receiver.status = 500
    m = await new_merchant(api)
    order = await create_order(api, m, 300, notify_url=receiver.url)
    citizen = (await api.sign_in(random_phone()))["access_token"]
    await pay_and_confirm(api, sims, citizen, order["id"], "wechatpay")

    async def dead() -> list | None:
        resp = await api.get("/api/v1/payments/events", params={"status": "dead"}, token=m.token)
        return [e for e in resp.json()["events"] if e["order_id"] == order["id"]] or None

    [event] = await eventually(dead, timeout=60)
    assert event["attempts"] == 16 and event["last_status"] == 500  # 1 + 15 retries
    tries = receiver.events(order["id"], "payment.succeeded")
    assert len(tries) == 16 and {h.headers["Superapp-Event-Id"] for h in tries} == {event["id"]}

    receiver.status = 200
    other = await new_merchant(api)
    denied = await api.post(f"/api/v1/payments/events/{event['id']}/redeliver", token=other.token)
    assert denied.status_code == 404
    resp = await api.post(f"/api/v1/payments/events/{event['id']}/redeliver", token=m.token)
    assert resp.status_code == 202

    async def delivered() -> list | None:
        resp = await api.get(
            "/api/v1/payments/events", params={"status": "delivered"}, token=m.token
        )
        return [e for e in resp.json()["events"] if e["id"] == event["id"]] or None

    await eventually(delivered)
    assert len(receiver.events(order["id"], "payment.succeeded")) == 17


@pytest.mark.asyncio
@pytest.mark.timeout(90)
async def test_each_event_of_a_batch_keeps_its_own_outcome(
    api: Api, sims: Sims, receiver: Receiver
) -> None:
    """Deliveries are claimed and recorded in batches; one failing endpoint must not
    mark its neighbours failed, nor a delivered neighbour mark it delivered."""
    receiver.status = 200
    m = await new_merchant(api)
    good = await create_order(api, m, 301, notify_url=receiver.url)
    bad = await create_order(api, m, 302, notify_url="http://127.0.0.1:9/nobody-listens")
    citizen = (await api.sign_in(random_phone()))["access_token"]
    await pay_and_confirm(api, sims, citizen, good["id"], "wechatpay")
    await pay_and_confirm(api, sims, citizen, bad["id"], "alipay")

    async def settled() -> dict | None:
        resp = await api.get("/api/v1/payments/events", token=m.token)
        mine = {e["order_id"]: e for e in resp.json()["events"] if e["type"] == "payment.succeeded"}
        ok, failed = mine.get(good["id"]), mine.get(bad["id"])
        if ok is None or failed is None or ok["status"] != "delivered":
            return None
        return mine if failed.get("last_error") else None

    events = await eventually(settled, timeout=60)
    assert events[good["id"]]["last_status"] == 200
    assert events[bad["id"]]["status"] in ("pending", "dead")
    assert events[bad["id"]]["last_status"] is None
    assert len(receiver.events(good["id"], "payment.succeeded")) == 1
    assert receiver.events(bad["id"]) == []


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_an_order_without_notify_url_uses_the_merchant_default(
    api: Api, sims: Sims, receiver: Receiver
) -> None:
    m = await new_merchant(api)
    bare = await create_order(api, m, 303)  # no URL anywhere yet: paid, no event
    citizen = (await api.sign_in(random_phone()))["access_token"]
    await pay_and_confirm(api, sims, citizen, bare["id"], "alipay")

    async def paid(order_id: str) -> bool:
        resp = await api.get(f"/api/v1/payments/orders/{order_id}", token=m.token)
        return resp.json()["status"] == "paid"

    await eventually(lambda: paid(bare["id"]))
    resp = await api.request(
        "PUT", "/api/v1/payments/merchant", json={"webhook_url": receiver.url}, token=m.token
    )
    assert resp.status_code == 200, resp.text
    order = await create_order(api, m, 304)
    await pay_and_confirm(api, sims, citizen, order["id"], "wechatpay")
    [hook] = await eventually(lambda: _async(receiver.events(order["id"], "payment.succeeded")))
    assert hook.event["data"]["order"]["status"] == "paid"
    assert hook.event["data"]["order"]["amount_fen"] == 304
    assert receiver.events(bare["id"]) == []
    events = await api.get("/api/v1/payments/events", token=m.token)
    assert [e["order_id"] for e in events.json()["events"]] == [order["id"]]


async def _async(value: object) -> object:
    return value
