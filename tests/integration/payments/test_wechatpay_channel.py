"""WeChat Pay v3 adapter against the WeChat Pay simulator running as its own process."""

from __future__ import annotations

import asyncio
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
from payments.channels.credentials import ensure_channel_credentials, load_wechatpay_merchant
from payments.channels.wechatpay import WechatPayChannel
from payments.errors import CallbackBadSignature, CallbackStale, ChannelRejected
from payments.ports import ChannelNotification, ChannelOrder

ROOT = Path(__file__).resolve().parents[3]
BEIJING = dt.timezone(dt.timedelta(hours=8))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    data_dir = tmp_path_factory.mktemp("wechatpay-sim")
    ensure_channel_credentials(data_dir)
    port = _free_port()
    cmd = [sys.executable, "-m", "server.sims.wechatpay", "--port", str(port)]
    cmd += ["--data-dir", str(data_dir), "--time-scale", "0.001"]
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
        self.server = tornado.httpserver.HTTPServer(tornado.web.Application([(r"/notify", Handler)]))
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

            refund = await channel.refund(order.out_trade_no, "rfd_" + order.out_trade_no[4:],
                                          234, 1234, "citizen cancelled")
            assert (refund.state, refund.refund_fen) == ("processing", 234)
            note = await receiver.next()
            assert note.kind == "refund" and note.refund is not None
            assert (note.refund.state, note.refund.refund_fen) == ("succeeded", 234)
            again = await channel.query_refund(order.out_trade_no, refund.out_refund_no)
            assert again.state == "succeeded"
            with pytest.raises(ChannelRejected):  # 234 + 1001 > 1234
                await channel.refund(order.out_trade_no, "rfd_x" + order.out_trade_no[4:],
                                     1001, 1234, "too much")

            rows = await channel.download_bill(dt.datetime.now(BEIJING).date())
            mine = [r for r in rows if r.out_trade_no == order.out_trade_no]
            assert sorted((r.kind, r.amount_fen) for r in mine) == [
                ("payment", 1234), ("refund", 234)
            ]
            assert [r.fee_fen for r in mine if r.kind == "payment"] == [7]  # 0.6% of 12.34
        finally:
            await receiver.close()
