"""Alipay adapter against the Alipay gateway simulator running as its own process."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qsl, urlencode

import httpx
import pytest
import tornado.httpserver
import tornado.netutil
import tornado.web

from identity.errors import DomainError
from payments.channels import alipay_signing
from payments.channels.alipay import AlipayChannel
from payments.channels.credentials import (
    ensure_channel_credentials,
    load_alipay_app,
    load_alipay_platform,
)
from payments.errors import (
    CallbackBadSignature,
    CallbackStale,
    ChannelRejected,
    ChannelTradeNotFound,
)
from payments.ports import ChannelNotification, ChannelOrder
from tests.support import free_port

ROOT = Path(__file__).resolve().parents[3]
BEIJING = dt.timezone(dt.timedelta(hours=8))


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    data_dir = tmp_path_factory.mktemp("alipay-sim")
    ensure_channel_credentials(data_dir)
    port = free_port()
    cmd = [sys.executable, "-m", "server.sims.alipay", "--port", str(port)]
    cmd += ["--data-dir", str(data_dir), "--time-scale", "0.0002"]
    proc = subprocess.Popen(cmd, cwd=ROOT)
    deadline = time.monotonic() + 15
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise RuntimeError("simulator did not start") from None
            time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", data_dir
    proc.terminate()
    proc.wait(timeout=10)


class Receiver:
    """The merchant's notify endpoint: verifies with the adapter and answers as it says."""

    def __init__(self, nacks: int = 0) -> None:
        self.channel: AlipayChannel | None = None
        self.nacks = nacks
        self.raw: list[tuple[dict[str, str], bytes]] = []
        self.errors: list[str] = []
        self.notifications: asyncio.Queue[ChannelNotification] = asyncio.Queue()
        receiver = self

        class Handler(tornado.web.RequestHandler):
            def post(self) -> None:
                channel = receiver.channel
                assert channel is not None
                headers = dict(self.request.headers.get_all())
                receiver.raw.append((headers, self.request.body))
                now = dt.datetime.now(dt.UTC)
                try:
                    note = channel.parse_notification(headers, self.request.body, now)
                except DomainError as exc:
                    receiver.errors.append(exc.code)
                    reply = channel.notification_nack(exc.code)
                else:
                    if receiver.nacks > 0:
                        receiver.nacks -= 1
                        reply = channel.notification_nack("busy")
                    else:
                        receiver.notifications.put_nowait(note)
                        reply = channel.notification_ack()
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


async def _sim_post(base: str, path: str, body: dict[str, str]) -> httpx.Response:
    async with httpx.AsyncClient() as c:
        return await c.post(f"{base}{path}", json=body)


def _order(total: int = 1234) -> ChannelOrder:
    return ChannelOrder("ord_" + secrets.token_hex(8), "Water bill", total)


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_pay_notify_query_refund_and_bill(sim: tuple[str, Path]) -> None:
    base, data_dir = sim
    receiver = Receiver()
    async with httpx.AsyncClient() as http:
        channel = AlipayChannel(
            http,
            load_alipay_app(data_dir),
            notify_url=receiver.url,
            gateway_url=f"{base}/gateway.do",
        )
        receiver.channel = channel
        try:
            order = _order()
            payment = await channel.create(order)
            order_string = payment.client_params["order_string"]
            fields = dict(parse_qsl(order_string))
            assert fields["method"] == "alipay.trade.app.pay" and fields["sign_type"] == "RSA2"
            assert '"total_amount":"12.34"' in fields["biz_content"]

            # Before the payer opens the order in the Alipay app, Alipay does not know it.
            pending = await channel.query(order.out_trade_no)
            assert (pending.state, pending.channel_state) == ("pending", "TRADE_NOT_EXIST")
            opened = await _sim_post(base, "/sim/pay", {"order_string": order_string})
            assert opened.status_code == 200
            assert (await channel.query(order.out_trade_no)).channel_state == "WAIT_BUYER_PAY"

            confirm = await _sim_post(base, "/sim/confirm", {"reference": order.out_trade_no})
            assert confirm.status_code == 200
            note = await receiver.next()
            assert note.kind == "payment" and note.trade is not None
            assert (note.trade.state, note.trade.amount_fen) == ("paid", 1234)
            paid = await channel.query(order.out_trade_no)
            assert (paid.state, paid.amount_fen) == ("paid", 1234)
            assert paid.transaction_id == note.trade.transaction_id

            refund_no = "rfd_" + order.out_trade_no[4:]
            refund = await channel.refund(order.out_trade_no, refund_no, 234, 1234, "cancelled")
            assert (refund.state, refund.refund_fen) == ("succeeded", 234)
            # Same out_request_no again: Alipay answers the same and refunds nothing more.
            await channel.refund(order.out_trade_no, refund_no, 234, 1234, "cancelled")
            queried = await channel.query_refund(order.out_trade_no, refund_no)
            assert (queried.state, queried.refund_fen) == ("succeeded", 234)
            with pytest.raises(ChannelRejected):  # 234 + 1001 > 1234
                await channel.refund(order.out_trade_no, "rfd_x", 1001, 1234, "too much")
            with pytest.raises(ChannelTradeNotFound):
                await channel.query_refund(order.out_trade_no, "rfd_never")

            rows = await channel.download_bill(dt.datetime.now(BEIJING).date())
            mine = [r for r in rows if r.out_trade_no == order.out_trade_no]
            assert sorted((r.kind, r.amount_fen, r.out_refund_no) for r in mine) == [
                ("payment", 1234, None),
                ("refund", 234, refund_no),
            ]
        finally:
            await receiver.close()


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_notification_retried_until_success(sim: tuple[str, Path]) -> None:
    base, data_dir = sim
    receiver = Receiver(nacks=2)
    async with httpx.AsyncClient() as http:
        channel = AlipayChannel(
            http,
            load_alipay_app(data_dir),
            notify_url=receiver.url,
            gateway_url=f"{base}/gateway.do",
        )
        receiver.channel = channel
        try:
            order = _order(100)
            payment = await channel.create(order)
            body = {
                "reference": order.out_trade_no,
                "order_string": payment.client_params["order_string"],
            }
            assert (await _sim_post(base, "/sim/confirm", body)).status_code == 200
            note = await receiver.next()
            assert note.trade is not None and note.trade.state == "paid"
            await asyncio.sleep(0.5)  # next retry would be after 10 min * 0.0002 = 0.12 s
            assert len(receiver.raw) == 3  # two refused, the third acknowledged, then silence
            ids = {dict(parse_qsl(b.decode()))["notify_id"] for _, b in receiver.raw}
            assert len(ids) == 1
        finally:
            await receiver.close()


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_forged_stale_and_tampered_notifications_refused(sim: tuple[str, Path]) -> None:
    base, data_dir = sim
    receiver = Receiver()
    async with httpx.AsyncClient() as http:
        channel = AlipayChannel(
            http,
            load_alipay_app(data_dir),
            notify_url=receiver.url,
            gateway_url=f"{base}/gateway.do",
        )
        receiver.channel = channel
        try:
            order = _order(500)
            payment = await channel.create(order)
            body = {
                "reference": order.out_trade_no,
                "order_string": payment.client_params["order_string"],
            }
            await _sim_post(base, "/sim/confirm", body)
            await receiver.next()
        finally:
            await receiver.close()
    headers, genuine = receiver.raw[0]
    now = dt.datetime.now(dt.UTC)
    params = dict(parse_qsl(genuine.decode()))

    tampered = urlencode({**params, "total_amount": "0.01"}).encode()
    with pytest.raises(CallbackBadSignature):
        channel.parse_notification(headers, tampered, now)
    # Signed by the app key instead of Alipay's: a merchant-side forgery.
    forged = {k: v for k, v in params.items() if k not in ("sign", "sign_type")}
    forged["sign"] = alipay_signing.sign_params(forged, load_alipay_app(data_dir).private_key)
    forged["sign_type"] = "RSA2"
    with pytest.raises(CallbackBadSignature):
        channel.parse_notification(headers, urlencode(forged).encode(), now)
    unsigned = urlencode({k: v for k, v in params.items() if k != "sign"}).encode()
    with pytest.raises(CallbackBadSignature):
        channel.parse_notification(headers, unsigned, now)
    with pytest.raises(CallbackStale):  # a genuine notification replayed ten minutes later
        channel.parse_notification(headers, genuine, now + dt.timedelta(minutes=10))
    assert channel.parse_notification(headers, genuine, now).notification_id == params["notify_id"]
    # And a correctly signed one by Alipay's key (what the simulator holds) still passes.
    platform = load_alipay_platform(data_dir)
    resigned = {k: v for k, v in params.items() if k not in ("sign", "sign_type")}
    resigned["sign"] = alipay_signing.sign_params(resigned, platform.private_key)
    note = channel.parse_notification(headers, urlencode(resigned).encode(), now)
    assert note.trade is not None and note.trade.amount_fen == 500


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_gateway_refuses_bad_signatures(sim: tuple[str, Path]) -> None:
    base, data_dir = sim
    creds = load_alipay_app(data_dir)
    async with httpx.AsyncClient() as http:
        channel = AlipayChannel(
            http, creds, notify_url="http://127.0.0.1:9/n", gateway_url=f"{base}/gateway.do"
        )
        params = channel._common("alipay.trade.query", {"out_trade_no": "ord_x"})
        unsigned = await http.post(f"{base}/gateway.do", data=params)
        assert unsigned.json()["alipay_trade_query_response"]["sub_code"] == (
            "isv.missing-signature"
        )
        params["sign"] = alipay_signing.sign_params(params, creds.private_key)
        params["biz_content"] = '{"out_trade_no":"ord_y"}'
        tampered = await http.post(f"{base}/gateway.do", data=params)
        assert tampered.json()["alipay_trade_query_response"]["sub_code"] == (
            "isv.invalid-signature"
        )
        # The app id is right but the key is not the one registered with Alipay.
        wrong_key = dataclasses.replace(
            creds, private_key=load_alipay_platform(data_dir).private_key
        )
        impostor = AlipayChannel(
            http, wrong_key, notify_url="http://127.0.0.1:9/n", gateway_url=f"{base}/gateway.do"
        )
        with pytest.raises(ChannelRejected) as err:
            await impostor.query("ord_whatever")
        assert err.value.extra["channel_code"] == "isv.invalid-signature"


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_close_before_opening_and_failed_payment(sim: tuple[str, Path]) -> None:
    base, data_dir = sim
    receiver = Receiver()
    async with httpx.AsyncClient() as http:
        channel = AlipayChannel(
            http,
            load_alipay_app(data_dir),
            notify_url=receiver.url,
            gateway_url=f"{base}/gateway.do",
        )
        receiver.channel = channel
        try:
            # Closed before the payer opened it: the order string can no longer be paid.
            order = _order()
            payment = await channel.create(order)
            await channel.close(order.out_trade_no)
            opened = await _sim_post(
                base, "/sim/pay", {"order_string": payment.client_params["order_string"]}
            )
            assert opened.json()["error"] == "ACQ.TRADE_HAS_CLOSE"

            # Opened, then the payment fails: Alipay closes the trade and says so.
            failing = _order()
            payment = await channel.create(failing)
            body = {
                "reference": failing.out_trade_no,
                "outcome": "fail",
                "order_string": payment.client_params["order_string"],
            }
            assert (await _sim_post(base, "/sim/confirm", body)).status_code == 200
            note = await receiver.next()
            assert note.trade is not None and note.trade.state == "closed"
            assert (await channel.query(failing.out_trade_no)).state == "closed"
            with pytest.raises(ChannelRejected):  # nothing was paid: nothing to refund
                await channel.refund(failing.out_trade_no, "rfd_f", 100, 1234, "no")
        finally:
            await receiver.close()
