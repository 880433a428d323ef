"""WeChat Pay v3 adapter against the WeChat Pay simulator running as its own process."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import json
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import tornado.httpserver
import tornado.netutil
import tornado.web

from identity.errors import DomainError
from payments.channels import rsa
from payments.channels import wechatpay_signing as signing
from payments.channels.credentials import (
    ensure_channel_credentials,
    load_wechatpay_merchant,
    load_wechatpay_platform,
)
from payments.channels.wechatpay import WechatPayChannel
from payments.errors import (
    CallbackBadSignature,
    CallbackStale,
    ChannelBadSignature,
    ChannelRejected,
    ChannelTradeNotFound,
)
from payments.ports import ChannelNotification, ChannelOrder
from tests.support import free_port

ROOT = Path(__file__).resolve().parents[3]
BEIJING = dt.timezone(dt.timedelta(hours=8))


@contextlib.contextmanager
def _simulator(data_dir: Path, *options: str) -> Iterator[str]:
    port = free_port()
    cmd = [sys.executable, "-m", "server.sims.wechatpay", "--port", str(port)]
    cmd += ["--data-dir", str(data_dir), "--time-scale", "0.001", *options]
    proc = subprocess.Popen(cmd, cwd=ROOT)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("simulator did not start") from None
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    data_dir = tmp_path_factory.mktemp("wechatpay-sim")
    ensure_channel_credentials(data_dir)
    with _simulator(data_dir) as base:
        yield base, data_dir


class Receiver:
    """The merchant's notify endpoint: verifies with the adapter and answers as it says."""

    def __init__(self, channel: WechatPayChannel, nacks: int = 0) -> None:
        self.channel = channel
        self.nacks = nacks
        self.raw: list[tuple[dict[str, str], bytes]] = []
        self.errors: list[str] = []
        self.notifications: asyncio.Queue[ChannelNotification] = asyncio.Queue()
        receiver = self

        class Handler(tornado.web.RequestHandler):
            def post(self) -> None:
                headers = dict(self.request.headers.get_all())
                receiver.raw.append((headers, self.request.body))
                now = dt.datetime.now(dt.UTC)
                try:
                    note = receiver.channel.parse_notification(headers, self.request.body, now)
                except DomainError as exc:
                    receiver.errors.append(exc.code)
                    reply = receiver.channel.notification_nack(exc.code)
                else:
                    if receiver.nacks > 0:
                        receiver.nacks -= 1
                        reply = receiver.channel.notification_nack("busy")
                    else:
                        receiver.notifications.put_nowait(note)
                        reply = receiver.channel.notification_ack()
                self.set_status(reply.status)
                self.set_header("Content-Type", reply.content_type)
                self.finish(reply.body)

        sockets = tornado.netutil.bind_sockets(0, "127.0.0.1")
        app = tornado.web.Application([(r"/notify", Handler)], log_function=lambda _h: None)
        self.server = tornado.httpserver.HTTPServer(app)
        self.server.add_sockets(sockets)
        self.url = f"http://127.0.0.1:{sockets[0].getsockname()[1]}/notify"

    async def next(self) -> ChannelNotification:
        return await asyncio.wait_for(self.notifications.get(), timeout=10)

    async def close(self) -> None:
        self.server.stop()
        await self.server.close_all_connections()


async def _confirm(base: str, reference: str, outcome: str | None = None) -> httpx.Response:
    body: dict[str, str] = {"reference": reference}
    if outcome:
        body["outcome"] = outcome
    async with httpx.AsyncClient() as c:
        return await c.post(f"{base}/sim/confirm", json=body)


def _order(total: int = 1234) -> ChannelOrder:
    return ChannelOrder("ord_" + secrets.token_hex(8), "Parking fee", total)


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_pay_callback_query_refund_and_bill(sim: tuple[str, Path]) -> None:
    base, data_dir = sim
    creds = load_wechatpay_merchant(data_dir)
    async with httpx.AsyncClient() as http:
        receiver = Receiver(WechatPayChannel(http, creds, notify_url="", base_url=base))
        channel = WechatPayChannel(http, creds, notify_url=receiver.url, base_url=base)
        receiver.channel = channel
        try:
            order = _order()
            payment = await channel.create(order)
            assert payment.reference.startswith("wx")
            params = payment.client_params
            assert params["prepayid"] == payment.reference and params["package"] == "Sign=WXPay"
            message = f"{creds.appid}\n{params['timestamp']}\n{params['noncestr']}\n"
            message += f"{payment.reference}\n"
            assert rsa.verify(creds.private_key.public_key(), message.encode(), params["sign"])

            assert (await channel.query(order.out_trade_no)).state == "pending"
            assert (await _confirm(base, payment.reference)).status_code == 200
            note = await receiver.next()
            assert note.kind == "payment" and note.trade is not None
            assert note.trade.state == "paid" and note.trade.amount_fen == 1234
            paid = await channel.query(order.out_trade_no)
            assert (paid.state, paid.amount_fen) == ("paid", 1234)
            assert paid.transaction_id == note.trade.transaction_id

            refund = await channel.refund(
                order.out_trade_no, "rfd_" + order.out_trade_no[4:], 234, 1234, "citizen cancelled"
            )
            assert (refund.state, refund.refund_fen) == ("processing", 234)
            note = await receiver.next()
            assert note.kind == "refund" and note.refund is not None
            assert (note.refund.state, note.refund.refund_fen) == ("succeeded", 234)
            again = await channel.query_refund(order.out_trade_no, refund.out_refund_no)
            assert again.state == "succeeded"
            with pytest.raises(ChannelRejected):  # 234 + 1001 > 1234
                await channel.refund(
                    order.out_trade_no, "rfd_x" + order.out_trade_no[4:], 1001, 1234, "too much"
                )

            rows = await channel.download_bill(dt.datetime.now(BEIJING).date())
            mine = [r for r in rows if r.out_trade_no == order.out_trade_no]
            assert sorted((r.kind, r.amount_fen) for r in mine) == [
                ("payment", 1234),
                ("refund", 234),
            ]
            assert [r.fee_fen for r in mine if r.kind == "payment"] == [7]  # 0.6% of 12.34
        finally:
            await receiver.close()


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_callback_retried_until_acknowledged(sim: tuple[str, Path]) -> None:
    base, data_dir = sim
    creds = load_wechatpay_merchant(data_dir)
    async with httpx.AsyncClient() as http:
        receiver = Receiver(WechatPayChannel(http, creds, notify_url="", base_url=base), nacks=3)
        channel = WechatPayChannel(http, creds, notify_url=receiver.url, base_url=base)
        receiver.channel = channel
        try:
            payment = await channel.create(_order(100))
            await _confirm(base, payment.reference)
            note = await receiver.next()
            assert note.trade is not None and note.trade.state == "paid"
            # 15s/15s/30s scaled by 0.001: the 4th post acks; the next would come 180 ms later.
            await asyncio.sleep(0.6)
            assert len(receiver.raw) == 4
            assert len({json.loads(body)["id"] for _, body in receiver.raw}) == 1
        finally:
            await receiver.close()


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_forged_stale_and_tampered_callbacks_refused(sim: tuple[str, Path]) -> None:
    base, data_dir = sim
    creds = load_wechatpay_merchant(data_dir)
    async with httpx.AsyncClient() as http:
        receiver = Receiver(WechatPayChannel(http, creds, notify_url="", base_url=base))
        channel = WechatPayChannel(http, creds, notify_url=receiver.url, base_url=base)
        receiver.channel = channel
        try:
            payment = await channel.create(_order(500))
            await _confirm(base, payment.reference)
            await receiver.next()
        finally:
            await receiver.close()
    headers, genuine = receiver.raw[0]
    now = dt.datetime.now(dt.UTC)
    assert channel.parse_notification(headers, genuine, now).kind == "payment"

    envelope = json.loads(genuine)
    tampered = json.dumps({**envelope, "event_type": "REFUND.SUCCESS"}).encode()
    with pytest.raises(CallbackBadSignature):
        channel.parse_notification(headers, tampered, now)
    with pytest.raises(CallbackStale):  # a genuine callback replayed ten minutes later
        channel.parse_notification(headers, genuine, now + dt.timedelta(minutes=10))
    missing = {k: v for k, v in headers.items() if k.lower() != "wechatpay-signature"}
    with pytest.raises(CallbackBadSignature):
        channel.parse_notification(missing, genuine, now)
    # Signed with the merchant's own key (anyone holding a merchant key, not the platform).
    forged = signing.signed_headers(creds.private_key, headers["Wechatpay-Serial"], genuine)
    with pytest.raises(CallbackBadSignature):
        channel.parse_notification(forged, genuine, now)
    # Properly signed by the platform, but the resource is not encrypted with our APIv3 key.
    platform = load_wechatpay_platform(data_dir)
    resource = signing.encrypt_resource(b"k" * 32, b'{"mchid":"1"}', "transaction", "transaction")
    other = json.dumps({**envelope, "resource": resource}).encode()
    other_headers = signing.signed_headers(platform.private_key, platform.serial_no, other)
    with pytest.raises(CallbackBadSignature):
        channel.parse_notification(other_headers, other, now)


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_unsigned_or_wrongly_signed_requests_refused(sim: tuple[str, Path]) -> None:
    base, data_dir = sim
    creds = load_wechatpay_merchant(data_dir)
    url = f"/v3/pay/transactions/out-trade-no/ord_whatever?mchid={creds.mchid}"
    async with httpx.AsyncClient() as http:
        unsigned = await http.get(base + url)
        assert unsigned.status_code == 401 and unsigned.json()["code"] == "SIGN_ERROR"
        auth = signing.authorization(
            mchid=creds.mchid,
            serial_no=creds.serial_no,
            key=creds.private_key,
            method="GET",
            url=url,
            body="",
        )
        other_url = url.replace("ord_whatever", "ord_another")
        replayed = await http.get(base + other_url, headers={"Authorization": auth})
        assert replayed.status_code == 401

        impostor = dataclasses.replace(creds, private_key=rsa.generate_private_key())
        with pytest.raises(ChannelRejected) as err:
            await WechatPayChannel(http, impostor, notify_url="n", base_url=base).query("ord_1")
        assert err.value.extra["channel_code"] == "SIGN_ERROR"
        # A response that does not verify against the platform key is never believed.
        merchant_key = creds.private_key.public_key()
        fooled = dataclasses.replace(
            creds, platform_public_keys=dict.fromkeys(creds.platform_public_keys, merchant_key)
        )
        with pytest.raises(ChannelBadSignature):
            await WechatPayChannel(http, fooled, notify_url="n", base_url=base).query("ord_1")


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_close_failure_and_jsapi(sim: tuple[str, Path]) -> None:
    base, data_dir = sim
    creds = load_wechatpay_merchant(data_dir)
    async with httpx.AsyncClient() as http:
        channel = WechatPayChannel(http, creds, notify_url="http://127.0.0.1:9/n", base_url=base)
        closed = _order()
        payment = await channel.create(closed)
        await channel.close(closed.out_trade_no)
        assert (await channel.query(closed.out_trade_no)).state == "closed"
        assert (await _confirm(base, payment.reference)).status_code == 409

        failing = _order()
        payment = await channel.create(failing)
        await _confirm(base, payment.reference, outcome="fail")
        assert (await channel.query(failing.out_trade_no)).state == "failed"

        jsapi = dataclasses.replace(_order(), payer_openid="oUpF8uMuAJO_M2pxb1Q9zNjWeS6o")
        payment = await channel.create(jsapi)
        p = payment.client_params
        assert p["package"] == f"prepay_id={payment.reference}" and p["signType"] == "RSA"
        message = f"{creds.appid}\n{p['timeStamp']}\n{p['nonceStr']}\n{p['package']}\n"
        assert rsa.verify(creds.private_key.public_key(), message.encode(), p["paySign"])
        with pytest.raises(ChannelTradeNotFound):
            await channel.query("ord_never_created")


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_duplicate_deliveries_when_switched_on(tmp_path: Path) -> None:
    ensure_channel_credentials(tmp_path)
    creds = load_wechatpay_merchant(tmp_path)
    with _simulator(tmp_path, "--duplicate", "1.0", "--seed", "7") as base:
        async with httpx.AsyncClient() as http:
            receiver = Receiver(WechatPayChannel(http, creds, notify_url="", base_url=base))
            channel = WechatPayChannel(http, creds, notify_url=receiver.url, base_url=base)
            receiver.channel = channel
            try:
                payment = await channel.create(_order(100))
                await _confirm(base, payment.reference)
                first, second = await receiver.next(), await receiver.next()
                assert first.notification_id == second.notification_id
            finally:
                await receiver.close()
