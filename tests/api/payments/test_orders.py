"""Orders: idempotent creation, validation, who may see what."""

from __future__ import annotations

import asyncio
import secrets

import pytest

from payments.repository import IDEMPOTENCY_LOCK
from tests.payments_support import Sims, create_order, new_merchant
from tests.support import Api, random_phone

ORDERS = "/api/v1/payments/orders"


def _body(**extra: object) -> dict[str, object]:
    return {
        "out_trade_no": "T" + secrets.token_hex(6),
        "amount_fen": 100,
        "subject": "Fee",
        **extra,
    }


@pytest.mark.asyncio
async def test_same_key_same_body_returns_the_first_response(api: Api) -> None:
    m = await new_merchant(api)
    key = {"Idempotency-Key": secrets.token_hex(8)}
    body = _body()
    first = await api.post(ORDERS, json=body, token=m.token, headers=key)
    again = await api.post(ORDERS, json=body, token=m.token, headers=key)
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert first.json()["status"] == "created"
    assert first.json()["currency"] == "CNY"


@pytest.mark.asyncio
async def test_same_key_different_body_is_a_conflict(api: Api) -> None:
    m = await new_merchant(api)
    key = {"Idempotency-Key": secrets.token_hex(8)}
    await api.post(ORDERS, json=_body(), token=m.token, headers=key)
    resp = await api.post(ORDERS, json=_body(), token=m.token, headers=key)
    assert resp.status_code == 422
    assert resp.json()["code"] == "idempotency-conflict"


@pytest.mark.asyncio
async def test_concurrent_duplicates_create_one_order(api: Api) -> None:
    m = await new_merchant(api)
    key = {"Idempotency-Key": secrets.token_hex(8)}
    body = _body()
    responses = await asyncio.gather(
        *(api.post(ORDERS, json=body, token=m.token, headers=key) for _ in range(6))
    )
    created = [r for r in responses if r.status_code == 201]
    busy = [r for r in responses if r.status_code == 409]
    assert len(created) + len(busy) == 6 and created
    assert {r.json()["id"] for r in created} == {created[0].json()["id"]}
    assert all(r.json()["code"] == "idempotency-in-flight" for r in busy)
    listed = await api.get(ORDERS, params={"out_trade_no": body["out_trade_no"]}, token=m.token)
    assert [o["id"] for o in listed.json()["orders"]] == [created[0].json()["id"]]


@pytest.mark.asyncio
async def test_a_duplicate_while_the_first_is_in_flight_is_409(api: Api) -> None:
    m = await new_merchant(api)
    key = secrets.token_hex(8)
    body = _body()
    # Hold the key's lock as a first request in flight does, in an open transaction.
    async with api.services.pool.acquire() as conn, conn.transaction():
        lock = IDEMPOTENCY_LOCK.format(merchant="$1::text", key="$2::text")
        await conn.execute(f"SELECT pg_advisory_xact_lock({lock})", m.client_id, key)
        resp = await api.post(ORDERS, json=body, token=m.token, headers={"Idempotency-Key": key})
        assert resp.status_code == 409 and resp.json()["code"] == "idempotency-in-flight"
    first = await api.post(ORDERS, json=body, token=m.token, headers={"Idempotency-Key": key})
    assert first.status_code == 201
    again = await api.post(ORDERS, json=body, token=m.token, headers={"Idempotency-Key": key})
    assert again.status_code == 201 and again.json() == first.json()


@pytest.mark.asyncio
async def test_out_trade_no_is_unique_per_merchant(api: Api) -> None:
    a, b = await new_merchant(api), await new_merchant(api)
    body = _body()
    assert (await api.post(ORDERS, json=body, token=a.token)).status_code == 201
    dup = await api.post(ORDERS, json=body, token=a.token)
    assert dup.status_code == 409 and dup.json()["code"] == "duplicate-out-trade-no"
    assert (await api.post(ORDERS, json=body, token=b.token)).status_code == 201


@pytest.mark.asyncio
@pytest.mark.parametrize("amount", [0, -1, 1_000_000_001, 1.5, "100", True])
async def test_amount_must_be_whole_fen_in_range(api: Api, amount: object) -> None:
    m = await new_merchant(api)
    resp = await api.post(ORDERS, json=_body(amount_fen=amount), token=m.token)
    assert resp.status_code == 422 and resp.json()["code"] == "invalid-amount"


@pytest.mark.asyncio
async def test_bounds_and_default_expiry(api: Api) -> None:
    m = await new_merchant(api)
    for amount in (1, 1_000_000_000):
        resp = await api.post(ORDERS, json=_body(amount_fen=amount), token=m.token)
        assert resp.status_code == 201
    order = resp.json()
    import datetime as dt

    created = dt.datetime.fromisoformat(order["created_at"].replace("Z", "+00:00"))
    expires = dt.datetime.fromisoformat(order["expires_at"].replace("Z", "+00:00"))
    assert abs((expires - created).total_seconds() - 1800) < 5
    bad = await api.post(ORDERS, json=_body(currency="USD"), token=m.token)
    assert bad.status_code == 422


@pytest.mark.asyncio
async def test_only_clients_create_and_only_owners_see(api: Api) -> None:
    citizen = (await api.sign_in(random_phone()))["access_token"]
    resp = await api.post(ORDERS, json=_body(), token=citizen)
    assert resp.status_code == 401
    a, b = await new_merchant(api), await new_merchant(api)
    order = await create_order(api, a)
    other = await api.get(f"{ORDERS}/{order['id']}", token=b.token)
    assert other.status_code == 404
    close = await api.post(f"{ORDERS}/{order['id']}/close", token=b.token)
    assert close.status_code == 404
    mine = await api.get(f"{ORDERS}/{order['id']}", token=a.token)
    assert mine.status_code == 200 and mine.json()["out_trade_no"] == order["out_trade_no"]
    listed = await api.get(ORDERS, params={"status": "created"}, token=a.token)
    assert [o["id"] for o in listed.json()["orders"]] == [order["id"]]


@pytest.mark.asyncio
async def test_payer_restriction_and_unknown_channel(api: Api, sims: Sims) -> None:
    m = await new_merchant(api)
    order = await create_order(api, m)
    citizen = (await api.sign_in(random_phone()))["access_token"]
    bad = await api.post(f"{ORDERS}/{order['id']}/pay", json={"channel": "paypal"}, token=citizen)
    assert bad.status_code == 422
    ok = await api.post(f"{ORDERS}/{order['id']}/pay", json={"channel": "wechatpay"}, token=citizen)
    assert ok.status_code == 200 and ok.json()["client_params"]["prepayid"]
    # Once a citizen pays an order, nobody else sees or pays it.
    other = (await api.sign_in(random_phone()))["access_token"]
    resp = await api.post(f"{ORDERS}/{order['id']}/pay", json={"channel": "alipay"}, token=other)
    assert resp.status_code == 404


@pytest.mark.asyncio
async def test_merchant_closes_an_unpaid_order(api: Api, sims: Sims) -> None:
    m = await new_merchant(api)
    order = await create_order(api, m)
    citizen = (await api.sign_in(random_phone()))["access_token"]
    pay = await api.post(
        f"{ORDERS}/{order['id']}/pay", json={"channel": "wechatpay"}, token=citizen
    )
    assert pay.status_code == 200
    closed = await api.post(f"{ORDERS}/{order['id']}/close", token=m.token)
    assert closed.status_code == 200 and closed.json()["status"] == "closed"
    again = await api.post(
        f"{ORDERS}/{order['id']}/pay", json={"channel": "wechatpay"}, token=citizen
    )
    assert again.status_code == 409 and again.json()["code"] == "order-not-payable"


@pytest.mark.asyncio
async def test_a_key_whose_order_failed_is_not_kept(api: Api) -> None:
    # The key and the order are written in one statement: a taken out_trade_no undoes the key.
    m = await new_merchant(api)
    taken = _body()
    assert (await api.post(ORDERS, json=taken, token=m.token)).status_code == 201
    key = {"Idempotency-Key": secrets.token_hex(8)}
    dup = await api.post(ORDERS, json=taken, token=m.token, headers=key)
    assert dup.status_code == 409 and dup.json()["code"] == "duplicate-out-trade-no"
    fresh = await api.post(ORDERS, json=_body(), token=m.token, headers=key)
    assert fresh.status_code == 201
    again = await api.post(ORDERS, json=taken, token=m.token, headers=key)
    assert again.status_code == 422 and again.json()["code"] == "idempotency-conflict"
