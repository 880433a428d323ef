"""An Alipay OpenAPI gateway simulator: a real process that speaks the gateway's wire format.

``POST /gateway.do`` verifies the app's RSA2 signature (``isv.invalid-signature``
otherwise) and answers ``{"<method>_response": {...}, "sign": ...}`` signed with the Alipay
key, for ``alipay.trade.query``/``close``/``refund``/``fastpay.refund.query`` and
``alipay.data.dataservice.bill.downloadurl.query``. Trade notifications are form posts
signed RSA2, retried 8 times within 25 h (4m,10m,10m,1h,2h,6h,15h) times ``time_scale``
until the merchant answers the literal ``success``. Refunds answer synchronously.

Test-only endpoints: ``POST /sim/pay {"order_string"}`` plays the Alipay app receiving the
signed order string; ``POST /sim/confirm {"reference": out_trade_no, "order_string"?,
"outcome": "fail"?}`` plays the payer confirming; ``GET /sim/trades`` lists what is held.
Run: ``python -m server.sims.alipay --port 8703 --data-dir var/sims``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import secrets
from typing import Any
from urllib.parse import parse_qsl, urlencode

from payments.channels import alipay_bill
from payments.channels import alipay_signing as signing
from payments.channels import credentials as creds_mod
from payments.channels.credentials import AlipayPlatformCredentials
from payments.channels.money import fen_to_yuan, yuan_to_fen
from payments.errors import InvalidAmount
from payments.ports import BillRow
from server.sims import lean_http, runner
from server.sims.delivery import CallbackDelivery, Faults

BEIJING = dt.timezone(dt.timedelta(hours=8))
RETRY_SCHEDULE = [240, 600, 600, 3600, 7200, 21600, 54000]
_TIME = "%Y-%m-%d %H:%M:%S"
Answer = tuple[str, str, str, dict[str, Any]]  # code, msg, sub_code, fields


@dataclasses.dataclass
class SimConfig:
    credentials: AlipayPlatformCredentials
    time_scale: float = 1.0
    faults: Faults = dataclasses.field(default_factory=Faults)


@dataclasses.dataclass
class Trade:
    out_trade_no: str
    trade_no: str
    subject: str
    total: int
    notify_url: str
    time_expire: str = ""
    trade_status: str = "WAIT_BUYER_PAY"
    gmt_create: str = ""
    gmt_payment: str = ""
    refunds: dict[str, tuple[int, str]] = dataclasses.field(default_factory=dict)

    @property
    def refunded(self) -> int:
        return sum(amount for amount, _ in self.refunds.values())


def _now() -> str:
    return dt.datetime.now(BEIJING).strftime(_TIME)


def _ok(**fields: Any) -> Answer:
    return "10000", "Success", "", fields


def _business(sub_code: str, sub_msg: str) -> Answer:
    return "40004", "Business Failed", sub_code, {"sub_msg": sub_msg}


class State:
    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.trades: dict[str, Trade] = {}
        self.closed: set[str] = set()  # closed before the payer ever opened them
        self.bills: dict[str, bytes] = {}
        self.delivery = CallbackDelivery(
            RETRY_SCHEDULE,
            lambda status, body: status == 200 and body.strip() == b"success",
            time_scale=config.time_scale,
            faults=config.faults,
        )

    def register(self, order_string: str) -> Trade | str:
        """Take a signed app order string as the Alipay app would; an error text otherwise."""
        c = self.config.credentials
        params = dict(parse_qsl(order_string, keep_blank_values=True))
        if not signing.verify_params(params, c.app_public_key):
            return "isv.invalid-signature"
        if params.get("app_id") != c.app_id or params.get("method") != "alipay.trade.app.pay":
            return "isv.invalid-app-id"
        try:
            biz = json.loads(params["biz_content"])
            no, total = str(biz["out_trade_no"]), yuan_to_fen(str(biz["total_amount"]))
        except (KeyError, ValueError, InvalidAmount):
            return "isv.invalid-biz-content"
        if no in self.closed:
            return "ACQ.TRADE_HAS_CLOSE"
        existing = self.trades.get(no)
        if existing is not None:
            return existing if existing.total == total else "ACQ.CONTEXT_INCONSISTENT"
        trade_no = dt.datetime.now(BEIJING).strftime("%Y%m%d") + "22001" + secrets.token_hex(8)
        trade = Trade(
            no,
            trade_no[:28],
            str(biz.get("subject", "")),
            total,
            params.get("notify_url", ""),
            str(biz.get("time_expire", "")),
            gmt_create=_now(),
        )
        self.trades[no] = trade
        return trade

    def notify(self, trade: Trade) -> None:
        c = self.config.credentials
        notify_id = secrets.token_hex(16)

        def build() -> tuple[dict[str, str], bytes]:
            params = {
                "notify_time": _now(),  # the time of this post, so it changes per retry
                "notify_type": "trade_status_sync",
                "notify_id": notify_id,
                "app_id": c.app_id,
                "charset": "utf-8",
                "version": "1.0",
                "trade_no": trade.trade_no,
                "out_trade_no": trade.out_trade_no,
                "seller_id": c.pid,
                "trade_status": trade.trade_status,
                "total_amount": fen_to_yuan(trade.total),
                "receipt_amount": fen_to_yuan(trade.total),
                "buyer_pay_amount": fen_to_yuan(trade.total),
                "subject": trade.subject,
                "gmt_create": trade.gmt_create,
                "gmt_payment": trade.gmt_payment,
            }
            params = {k: v for k, v in params.items() if v}
            params["sign"] = signing.sign_params(params, c.private_key)
            params["sign_type"] = "RSA2"  # added after signing: notifications exclude it
            headers = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}
            return headers, urlencode(params).encode()

        self.delivery.send(f"{trade.trade_status} {trade.out_trade_no}", trade.notify_url, build)

    def trade_query(self, biz: dict[str, Any]) -> Answer:
        t = self.trades.get(str(biz.get("out_trade_no")))
        if t is None:
            return _business("ACQ.TRADE_NOT_EXIST", "交易不存在")
        fields = {
            "trade_no": t.trade_no,
            "out_trade_no": t.out_trade_no,
            "trade_status": t.trade_status,
            "total_amount": fen_to_yuan(t.total),
            "buyer_logon_id": "159****5620",
        }
        if t.gmt_payment:
            fields.update(send_pay_date=t.gmt_payment, buyer_pay_amount=fen_to_yuan(t.total))
        return _ok(**fields)

    def trade_close(self, biz: dict[str, Any]) -> Answer:
        no = str(biz.get("out_trade_no"))
        t = self.trades.get(no)
        if t is None:
            self.closed.add(no)  # a later attempt to pay this order string is refused
            return _business("ACQ.TRADE_NOT_EXIST", "交易不存在")
        if t.trade_status != "WAIT_BUYER_PAY":
            return _business("ACQ.TRADE_STATUS_ERROR", "交易状态不合法")
        t.trade_status = "TRADE_CLOSED"
        return _ok(trade_no=t.trade_no, out_trade_no=no)

    def trade_refund(self, biz: dict[str, Any]) -> Answer:
        t = self.trades.get(str(biz.get("out_trade_no")))
        if t is None:
            return _business("ACQ.TRADE_NOT_EXIST", "交易不存在")
        try:
            amount, request_no = yuan_to_fen(str(biz["refund_amount"])), str(biz["out_request_no"])
        except (KeyError, InvalidAmount):
            return "40002", "Invalid Arguments", "isv.invalid-parameter", {}
        previous = t.refunds.get(request_no)
        if previous is None:  # the same out_request_no never refunds twice
            if t.trade_status != "TRADE_SUCCESS":
                return _business("ACQ.TRADE_STATUS_ERROR", "交易状态不合法")
            if amount <= 0 or t.refunded + amount > t.total:
                return _business("ACQ.REFUND_AMT_NOT_EQUAL_TOTAL", "退款金额超限")
            t.refunds[request_no] = (amount, _now())
        elif previous[0] != amount:
            return _business("ACQ.CONTEXT_INCONSISTENT", "参数与上次请求不一致")
        return _ok(
            trade_no=t.trade_no,
            out_trade_no=t.out_trade_no,
            fund_change="Y",
            refund_fee=fen_to_yuan(t.refunded),
            gmt_refund_pay=t.refunds[request_no][1],
            buyer_logon_id="159****5620",
        )

    def refund_query(self, biz: dict[str, Any]) -> Answer:
        t = self.trades.get(str(biz.get("out_trade_no")))
        if t is None:
            return _business("ACQ.TRADE_NOT_EXIST", "交易不存在")
        refund = t.refunds.get(str(biz.get("out_request_no")))
        if refund is None:
            return _ok(out_trade_no=t.out_trade_no, trade_no=t.trade_no)  # Alipay's quirk
        return _ok(
            trade_no=t.trade_no,
            out_trade_no=t.out_trade_no,
            out_request_no=biz.get("out_request_no"),
            total_amount=fen_to_yuan(t.total),
            refund_amount=fen_to_yuan(refund[0]),
            refund_status="REFUND_SUCCESS",
            gmt_refund_pay=refund[1],
        )

    def bill_rows(self, day: dt.date) -> list[BillRow]:
        rows: list[BillRow] = []
        for t in self.trades.values():
            extra = {"total_fen": str(t.total)}
            if t.gmt_payment and t.gmt_payment.startswith(day.isoformat()):
                fee = (t.total * 6 + 500) // 1000
                rows.append(
                    BillRow(
                        "payment",
                        t.out_trade_no,
                        t.trade_no,
                        t.total,
                        _utc(t.gmt_payment),
                        fee_fen=fee,
                        extra=extra,
                    )
                )
            for request_no, (amount, at) in t.refunds.items():
                if at.startswith(day.isoformat()):
                    rows.append(
                        BillRow(
                            "refund",
                            t.out_trade_no,
                            t.trade_no,
                            amount,
                            _utc(at),
                            out_refund_no=request_no,
                            extra=extra,
                        )
                    )
        return sorted(rows, key=lambda r: r.occurred_at)


def _utc(beijing: str) -> dt.datetime:
    return dt.datetime.strptime(beijing, _TIME).replace(tzinfo=BEIJING).astimezone(dt.UTC)


class GatewayHandler(runner.SimHandler):
    def answer(self, method: str, result: Answer) -> None:
        code, msg, sub_code, fields = result
        content: dict[str, Any] = {"code": code, "msg": msg}
        if sub_code:
            content["sub_code"] = sub_code
        content.update(fields)
        body = signing.signed_response(method, content, self.state.config.credentials.private_key)
        self.set_header("Content-Type", "application/json;charset=utf-8")
        self.finish(body)

    def post(self) -> None:
        state: State = self.state
        c = state.config.credentials
        params = {k: self.get_argument(k, strip=False) for k in self.request.arguments}
        method = params.get("method", "")
        if "sign" not in params:
            return self.answer(
                method, ("40001", "Missing Required Arguments", "isv.missing-signature", {})
            )
        if params.get("app_id") != c.app_id:
            return self.answer(method, ("40002", "Invalid Arguments", "isv.invalid-app-id", {}))
        if not signing.verify_params(params, c.app_public_key):
            return self.answer(
                method,
                ("40002", "Invalid Arguments", "isv.invalid-signature", {"sub_msg": "验签出错"}),
            )
        try:
            biz = json.loads(params.get("biz_content", "{}"))
        except ValueError:
            biz = None
        if not isinstance(biz, dict):
            return self.answer(method, ("40002", "Invalid Arguments", "isv.invalid-parameter", {}))
        if method == "alipay.data.dataservice.bill.downloadurl.query":
            return self.answer(method, self.bill(biz))
        handlers = {
            "alipay.trade.query": state.trade_query,
            "alipay.trade.close": state.trade_close,
            "alipay.trade.refund": state.trade_refund,
            "alipay.trade.fastpay.refund.query": state.refund_query,
        }
        if method not in handlers:
            return self.answer("error", ("40004", "Business Failed", "isv.invalid-method", {}))
        self.answer(method, handlers[method](biz))

    def bill(self, biz: dict[str, Any]) -> Answer:
        state: State = self.state
        try:
            day = dt.date.fromisoformat(str(biz.get("bill_date")))
        except ValueError:
            return "40002", "Invalid Arguments", "isv.invalid-parameter", {}
        rows = state.bill_rows(day)
        if not rows:
            return _business("isp.bill_not_exist", "账单不存在")
        subjects = {t.out_trade_no: t.subject for t in state.trades.values()}
        token = secrets.token_urlsafe(24)
        state.bills[token] = alipay_bill.build_trade_bill(
            rows, pid=state.config.credentials.pid, day=day, subjects=subjects
        )
        url = f"{self.request.protocol}://{self.request.host}/downloadBillFile.resource"
        return _ok(bill_download_url=f"{url}?bizType=trade&fileType=csv.zip&fileId={token}")


class BillFileHandler(runner.SimHandler):
    def get(self) -> None:
        data = self.state.bills.get(self.get_query_argument("fileId", ""))
        if data is None:
            raise lean_http.HTTPError(404)
        self.set_header("Content-Type", "application/zip")
        self.finish(data)


class PayHandler(runner.SimHandler):
    def post(self) -> None:
        result = self.state.register(str(self.json_body().get("order_string", "")))
        if isinstance(result, str):
            return self.reply(400, {"error": result})
        self.reply(200, {"out_trade_no": result.out_trade_no, "trade_no": result.trade_no})


class ConfirmHandler(runner.SimHandler):
    def post(self) -> None:
        state: State = self.state
        body = self.json_body()
        if body.get("order_string"):
            registered = state.register(str(body["order_string"]))
            if isinstance(registered, str):
                return self.reply(400, {"error": registered})
        trade = state.trades.get(str(body.get("reference")))
        if trade is None:
            return self.reply(404, {"error": "unknown out_trade_no"})
        if trade.trade_status != "WAIT_BUYER_PAY":
            return self.reply(409, {"error": f"trade is {trade.trade_status}"})
        if trade.time_expire and trade.time_expire < _now():
            trade.trade_status = "TRADE_CLOSED"
            return self.reply(409, {"error": "trade expired"})
        if body.get("outcome") == "fail":
            trade.trade_status = "TRADE_CLOSED"
        else:
            trade.trade_status, trade.gmt_payment = "TRADE_SUCCESS", _now()
        state.notify(trade)
        self.reply(200, {"out_trade_no": trade.out_trade_no, "trade_status": trade.trade_status})


class TradesHandler(runner.SimHandler):
    def get(self) -> None:
        state: State = self.state
        self.reply(
            200,
            {
                "trades": [dataclasses.asdict(t) for t in state.trades.values()],
                "callbacks": [dataclasses.asdict(a) for a in state.delivery.attempts],
            },
        )


def make_app(config: SimConfig) -> lean_http.Application:
    state = State(config)
    deps = {"state": state}
    app = lean_http.Application(
        [
            (r"/gateway.do", GatewayHandler, deps),
            (r"/downloadBillFile.resource", BillFileHandler, deps),
            (r"/sim/pay", PayHandler, deps),
            (r"/sim/confirm", ConfirmHandler, deps),
            (r"/sim/trades", TradesHandler, deps),
        ]
    )
    app.settings["sim_state"] = state
    return app


async def serve(host: str, port: int, data_dir: str | None, **options: Any) -> None:
    """Run forever; keys come from (and are generated into) ``data_dir``."""
    directory = runner.credentials_dir(data_dir)
    creds_mod.ensure_channel_credentials(directory)
    config = SimConfig(
        credentials=creds_mod.load_alipay_platform(directory),
        time_scale=float(options.get("time_scale", 1.0)),
        faults=runner.faults(options),
    )
    app = make_app(config)
    await runner.run(app, host, port, app.settings["sim_state"].delivery)


if __name__ == "__main__":
    runner.main(serve)
