"""The "done when" story over HTTP: a mini-app's server creates an order, a citizen pays it
through each channel's simulator, the merchant receives exactly one signed notification, a
partial refund goes through, and the day's reconciliation has no unexplained difference."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import time

import jwt
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from payments.webhooks import verify_signature
from tests.payments_support import (
    BEIJING,
    Receiver,
    Sims,
    create_order,
    eventually,
    new_merchant,
    order_status,
    pay_and_confirm,
)
from tests.support import Api


def _verify_platform(jwks: dict, header: str, ts: int, body: bytes) -> bool:
    parts = dict(p.split("=", 1) for p in header.split(","))
    [jwk] = [k for k in jwks["keys"] if k["kid"] == parts["kid"]]
    assert jwk["kty"] == "EC"

    def num(v: str) -> int:
        return int.from_bytes(base64.urlsafe_b64decode(v + "=" * (-len(v) % 4)), "big")

    key = ec.EllipticCurvePublicNumbers(num(jwk["x"]), num(jwk["y"]), ec.SECP256R1()).public_key()
    raw = base64.urlsafe_b64decode(parts["sig"] + "=" * (-len(parts["sig"]) % 4))
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    try:
        key.verify(der, f"{ts}.".encode() + body, ec.ECDSA(hashes.SHA256()))
    except Exception:  # noqa: BLE001 - InvalidSignature
        return False
    return True


@pytest.mark.asyncio
@pytest.mark.timeout(90)
@pytest.mark.parametrize("channel", ["wechatpay", "alipay"])
async def test_order_pay_notify_refund_reconcile(
    api: Api, sims: Sims, receiver: Receiver, channel: str
) -> None:
    merchant = await new_merchant(api)
    citizen = (await api.sign_in(api_phone()))["access_token"]
    order = await create_order(api, merchant, 2500, notify_url=receiver.url, expires_in=600)
    assert order["status"] == "created" and order["amount_fen"] == 2500

    pay = await pay_and_confirm(api, sims, citizen, order["id"], channel)
    assert pay["client_params"]

    async def paid() -> dict | None:
        o = await order_status(api, merchant, order["id"])
        return o if o["status"] == "paid" else None

    done = await eventually(paid)
    assert done["channel"] == channel and done["transaction_id"]

    # Exactly one signed notification, however often the channel called back.
    hooks = await eventually(lambda: _async(receiver.events(order["id"], "payment.succeeded")))
    await asyncio.sleep(0.5)
    hooks = receiver.events(order["id"], "payment.succeeded")
    assert len(hooks) == 1
    hook = hooks[0]
    sig = hook.headers["Superapp-Signature"]
    assert verify_signature(merchant.webhook_secret, sig, hook.body)
    assert not verify_signature("whsec_wrong", sig, hook.body)
    ts = int(sig.split(",")[0][2:])
    jwks = (await api.get("/.well-known/jwks.json")).json()
    assert _verify_platform(jwks, hook.headers["Superapp-Platform-Signature"], ts, hook.body)
    assert hook.headers["Superapp-Event-Id"] == hook.event["id"]
    assert hook.event["data"]["order"]["status"] == "paid"

    # A partial refund; the final result comes asynchronously.
    resp = await api.post(
        f"/api/v1/payments/orders/{order['id']}/refunds",
        json={"out_refund_no": "R1", "amount_fen": 1000, "reason": "overpaid"},
        token=merchant.token,
    )
    assert resp.status_code == 201, resp.text

    async def refunded() -> dict | None:
        o = await order_status(api, merchant, order["id"])
        return o if o["status"] == "partially_refunded" else None

    done = await eventually(refunded)
    assert done["refunded_fen"] == 1000 and done["refunds"][0]["status"] == "succeeded"
    await eventually(lambda: _async(receiver.events(order["id"], "refund.succeeded")))

    # The citizen sees the payment, the refund and a signed receipt.
    mine = (await api.get("/api/v1/payments/me/orders", token=citizen)).json()["orders"]
    [mine_order] = [o for o in mine if o["id"] == order["id"]]
    assert mine_order["refunds"][0]["amount_fen"] == 1000
    assert mine_order["receipt"]["amount_fen"] == 2500 and mine_order["receipt"]["token"]
    # Anyone can check the receipt against the platform's published keys.
    jwk_client = jwt.PyJWKSet.from_dict(jwks)
    header = jwt.get_unverified_header(mine_order["receipt"]["token"])
    [key] = [k for k in jwk_client.keys if k.key_id == header["kid"]]
    claims = jwt.decode(mine_order["receipt"]["token"], key.key, algorithms=["ES256", "EdDSA"])
    assert claims["receipt"]["transaction_id"] == done["transaction_id"]

    # Finance staff reconcile the day: nothing unexplained, and the books balance.
    _, finance = await api.staff("finance", await api.unit())
    today = dt.datetime.now(BEIJING).date().isoformat()
    resp = await api.post("/api/v1/payments/reconciliations", json={"date": today}, token=finance)
    assert resp.status_code == 200, resp.text
    report = resp.json()
    assert report["unexplained"] == 0, report
    matched = sum(c["matched"] for c in report["channels"])
    assert matched >= 2  # at least this payment and this refund
    tb = (await api.get("/api/v1/payments/ledger/trial-balance", token=finance)).json()
    assert tb["balanced"] and tb["total_debits_fen"] == tb["total_credits_fen"]
    clearing = await api.get(
        f"/api/v1/payments/ledger/accounts/channel_clearing:{channel}", token=finance
    )
    assert clearing.status_code == 200
    assert (
        clearing.json()["balance_fen"] == sum(e["amount_fen"] for e in clearing.json()["entries"])
        or len(clearing.json()["entries"]) == 100
    )
    stored = await api.get(
        "/api/v1/payments/reconciliations", params={"date": today}, token=finance
    )
    ids = {r["id"] for r in stored.json()["reconciliations"]}
    assert {c["id"] for c in report["channels"]} <= ids
    # Only finance staff reconcile; a citizen or a merchant is refused.
    denied = await api.post("/api/v1/payments/reconciliations", json={"date": today}, token=citizen)
    assert denied.status_code == 403
    denied = await api.get("/api/v1/payments/ledger/trial-balance", token=merchant.token)
    assert denied.status_code in (401, 403)


async def _async(value: object) -> object:
    return value


def api_phone() -> str:
    from tests.support import random_phone

    _ = time  # keep imports minimal
    return random_phone()
