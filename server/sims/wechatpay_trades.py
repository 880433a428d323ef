"""The WeChat Pay simulator's books: trades, refunds, callbacks and bill rows, in memory.

Objects are shaped as API v3 returns them (``transaction`` and ``refund`` objects); callbacks
go out through ``CallbackDelivery`` on WeChat's retry schedule.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
import secrets
from typing import Any

from payments.channels import wechatpay_signing as signing
from payments.channels.credentials import WechatPayPlatformCredentials
from payments.ports import BillRow
from server.sims.delivery import CallbackDelivery, Faults

BEIJING = dt.timezone(dt.timedelta(hours=8))
RETRY_SCHEDULE = [15, 15, 30, 180, 600, 1200, 1800, 1800, 1800, 3600, 10800, 10800, 10800]
RETRY_SCHEDULE += [21600, 21600]
REFUND_DELAY = 5.0  # seconds (scaled) between PROCESSING and SUCCESS


@dataclasses.dataclass
class SimConfig:
    credentials: WechatPayPlatformCredentials
    time_scale: float = 1.0
    faults: Faults = dataclasses.field(default_factory=Faults)


@dataclasses.dataclass
class Trade:
    out_trade_no: str
    description: str
    total: int
    notify_url: str
    trade_type: str
    openid: str
    prepay_id: str
    time_expire: str | None
    trade_state: str = "NOTPAY"
    transaction_id: str = ""
    success_time: str = ""
    refunded: int = 0


@dataclasses.dataclass
class Refund:
    out_refund_no: str
    refund_id: str
    out_trade_no: str
    transaction_id: str
    refund: int
    total: int
    notify_url: str
    status: str = "PROCESSING"
    create_time: str = ""
    success_time: str = ""


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def rfc3339(value: dt.datetime) -> str:
    return value.astimezone(BEIJING).replace(microsecond=0).isoformat("T")


class State:
    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.trades: dict[str, Trade] = {}
        self.by_prepay: dict[str, str] = {}
        self.refunds: dict[str, Refund] = {}
        self.bills: dict[str, bytes] = {}
        self._background: set[asyncio.Task[None]] = set()
        self.delivery = CallbackDelivery(
            RETRY_SCHEDULE,
            lambda status, _body: status in (200, 204),
            time_scale=config.time_scale,
            faults=config.faults,
        )

    def transaction(self, t: Trade) -> dict[str, Any]:
        c = self.config.credentials
        data: dict[str, Any] = {
            "appid": c.appid,
            "mchid": c.mchid,
            "out_trade_no": t.out_trade_no,
            "trade_type": t.trade_type,
            "trade_state": t.trade_state,
            "trade_state_desc": t.trade_state,
            "attach": "",
            "amount": {"total": t.total, "currency": "CNY"},
        }
        if t.transaction_id:
            data["transaction_id"] = t.transaction_id
            data["bank_type"] = "OTHERS"
            data["success_time"] = t.success_time
            data["payer"] = {"openid": t.openid}
            data["amount"].update(payer_total=t.total, payer_currency="CNY")
        return data

    def refund_object(self, r: Refund) -> dict[str, Any]:
        return {
            "refund_id": r.refund_id,
            "out_refund_no": r.out_refund_no,
            "transaction_id": r.transaction_id,
            "out_trade_no": r.out_trade_no,
            "channel": "ORIGINAL",
            "user_received_account": "支付用户零钱",
            "success_time": r.success_time or None,
            "create_time": r.create_time,
            "status": r.status,
            "amount": {
                "total": r.total,
                "refund": r.refund,
                "payer_total": r.total,
                "payer_refund": r.refund,
                "currency": "CNY",
            },
        }

    def notify(self, url: str, event_type: str, original_type: str, data: dict[str, Any]) -> None:
        c = self.config.credentials
        resource = signing.encrypt_resource(
            c.apiv3_key, json.dumps(data, ensure_ascii=False).encode(), original_type, original_type
        )
        envelope = {
            "id": "EV-" + secrets.token_hex(12),
            "create_time": rfc3339(now()),
            "resource_type": "encrypt-resource",
            "event_type": event_type,
            "summary": "支付成功" if original_type == "transaction" else "退款成功",
            "resource": resource,
        }
        body = json.dumps(envelope, ensure_ascii=False).encode()

        def build() -> tuple[dict[str, str], bytes]:
            headers = signing.signed_headers(c.private_key, c.serial_no, body)
            return {**headers, "Content-Type": "application/json"}, body

        self.delivery.send(f"{event_type} {data['out_trade_no']}", url, build)

    def start_refund(self, r: Refund) -> None:
        # Keep a reference: the loop holds tasks only weakly.
        task = asyncio.get_running_loop().create_task(self.complete_refund(r))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def complete_refund(self, r: Refund) -> None:
        await asyncio.sleep(REFUND_DELAY * self.config.time_scale)
        r.status, r.success_time = "SUCCESS", rfc3339(now())
        # The notification's refund object differs from the query's: mchid, refund_status.
        data = self.refund_object(r)
        data.update(mchid=self.config.credentials.mchid, refund_status=data.pop("status"))
        for name in ("channel", "create_time"):
            data.pop(name)
        self.notify(r.notify_url, "REFUND.SUCCESS", "refund", data)


def bill_rows(state: State, day: dt.date) -> list[BillRow]:
    rows: list[BillRow] = []
    for t in state.trades.values():
        if t.success_time and dt.datetime.fromisoformat(t.success_time).date() == day:
            fee = (t.total * 6 + 500) // 1000  # 0.6%, half up
            when = dt.datetime.fromisoformat(t.success_time)
            extra = {"openid": t.openid, "trade_type": t.trade_type}
            rows.append(
                BillRow(
                    "payment",
                    t.out_trade_no,
                    t.transaction_id,
                    t.total,
                    when,
                    None,
                    None,
                    fee,
                    extra,
                )
            )
    for r in state.refunds.values():
        if r.success_time and dt.datetime.fromisoformat(r.success_time).date() == day:
            when = dt.datetime.fromisoformat(r.success_time)
            rows.append(
                BillRow(
                    "refund",
                    r.out_trade_no,
                    r.transaction_id,
                    r.refund,
                    when,
                    r.out_refund_no,
                    r.refund_id,
                )
            )
    return sorted(rows, key=lambda row: row.occurred_at)
