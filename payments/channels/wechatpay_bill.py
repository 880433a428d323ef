"""The WeChat Pay daily trade bill (``GET /v3/bill/tradebill``, bill_type ALL) file format.

A UTF-8 CSV: a header line, one line per payment (交易状态 ``SUCCESS``) or refund
(``REFUND``), then a summary header and a summary line. Every data field is prefixed with a
backquote so spreadsheets keep long ids as text. Amounts are yuan, times Beijing time. The
summary (count and totals) is checked against the rows, on top of the SHA1 of the file that
the adapter checks against ``hash_value``.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterable

from payments.channels.money import fen_to_yuan, yuan_to_fen, yuan_to_fen_rounded
from payments.errors import BillIntegrityFailed, InvalidAmount
from payments.ports import BillRow

BEIJING = dt.timezone(dt.timedelta(hours=8))
HEADER = (
    "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,"
    "交易状态,付款银行,货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,"
    "充值券退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,"
    "费率备注"
).split(",")
SUMMARY_HEADER = (
    "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额"
).split(",")


def _time(value: dt.datetime) -> str:
    return value.astimezone(BEIJING).strftime("%Y-%m-%d %H:%M:%S")


def build_trade_bill(
    rows: Iterable[BillRow], *, appid: str, mchid: str, descriptions: dict[str, str]
) -> bytes:
    """Render a bill file (the simulator uses this; kept beside the parser for symmetry)."""
    out = io.StringIO()
    out.write(",".join(HEADER) + "\r\n")
    count, paid, refunded, fees = 0, 0, 0, 0
    for r in rows:
        is_refund = r.kind == "refund"
        fields = {
            "交易时间": _time(r.occurred_at),
            "公众账号ID": appid,
            "商户号": mchid,
            "特约商户号": "0",
            "设备号": "",
            "微信订单号": r.transaction_id,
            "商户订单号": r.out_trade_no,
            "用户标识": r.extra.get("openid", ""),
            "交易类型": r.extra.get("trade_type", "APP"),
            "交易状态": "REFUND" if is_refund else "SUCCESS",
            "付款银行": "OTHERS",
            "货币种类": "CNY",
            "应结订单金额": fen_to_yuan(0 if is_refund else r.amount_fen),
            "代金券金额": "0.00",
            "微信退款单号": r.refund_id or "0",
            "商户退款单号": r.out_refund_no or "0",
            "退款金额": fen_to_yuan(r.amount_fen if is_refund else 0),
            "充值券退款金额": "0.00",
            "退款类型": "ORIGINAL" if is_refund else "",
            "退款状态": "SUCCESS" if is_refund else "",
            "商品名称": descriptions.get(r.out_trade_no, ""),
            "商户数据包": "",
            "手续费": f"{fen_to_yuan(r.fee_fen)}000",
            "费率": "0.60%",
            "订单金额": fen_to_yuan(0 if is_refund else r.amount_fen),
            "申请退款金额": fen_to_yuan(r.amount_fen if is_refund else 0),
            "费率备注": "",
        }
        out.write(",".join("`" + fields[h] for h in HEADER) + "\r\n")
        count += 1
        paid += 0 if is_refund else r.amount_fen
        refunded += r.amount_fen if is_refund else 0
        fees += r.fee_fen
    out.write(",".join(SUMMARY_HEADER) + "\r\n")
    summary = [str(count), fen_to_yuan(paid), fen_to_yuan(refunded), "0.00"]
    summary += [f"{fen_to_yuan(fees)}000", fen_to_yuan(paid), fen_to_yuan(refunded)]
    out.write(",".join("`" + v for v in summary) + "\r\n")
    return out.getvalue().encode("utf-8")


def _unquote(value: str) -> str:
    return value[1:] if value.startswith("`") else value


def parse_trade_bill(data: bytes) -> list[BillRow]:
    """Parse a bill file and check its summary line against its rows."""
    try:
        text = data.decode("utf-8-sig")
        lines = list(csv.reader(io.StringIO(text)))
        if not lines or lines[0] != HEADER:
            raise BillIntegrityFailed("unexpected bill header")
        split = lines.index(SUMMARY_HEADER)
        body, summary = lines[1:split], [_unquote(v) for v in lines[split + 1]]
        rows = [_row(dict(zip(HEADER, map(_unquote, line), strict=True))) for line in body]
        totals = (int(summary[0]), yuan_to_fen(summary[1]), yuan_to_fen(summary[2]))
    except (ValueError, IndexError, UnicodeDecodeError, InvalidAmount) as exc:
        raise BillIntegrityFailed("malformed bill file") from exc
    paid = sum(r.amount_fen for r in rows if r.kind == "payment")
    refunded = sum(r.amount_fen for r in rows if r.kind == "refund")
    if totals != (len(rows), paid, refunded):
        raise BillIntegrityFailed("bill summary does not match its rows")
    return rows


def _row(f: dict[str, str]) -> BillRow:
    occurred = dt.datetime.strptime(f["交易时间"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=BEIJING)
    is_refund = f["交易状态"] == "REFUND"
    return BillRow(
        kind="refund" if is_refund else "payment",
        out_trade_no=f["商户订单号"],
        transaction_id=f["微信订单号"],
        amount_fen=yuan_to_fen(f["退款金额"] if is_refund else f["应结订单金额"]),
        occurred_at=occurred.astimezone(dt.UTC),
        out_refund_no=f["商户退款单号"] if is_refund else None,
        refund_id=f["微信退款单号"] if is_refund else None,
        fee_fen=yuan_to_fen_rounded(f["手续费"]),
        extra={"trade_state": f["交易状态"], "trade_type": f["交易类型"]},
    )
