"""Daily bill files of both channels: parsed exactly, and refused when inconsistent."""

from __future__ import annotations

import datetime as dt
import io
import zipfile

import pytest

from payments.channels import alipay_bill, wechatpay_bill
from payments.errors import BillIntegrityFailed
from payments.ports import BillRow

AT = dt.datetime(2026, 11, 21, 2, 30, tzinfo=dt.UTC)  # 10:30 Beijing
ROWS = [
    BillRow("payment", "ord_1", "4200001", 1234, AT, fee_fen=7, extra={"total_fen": "1234"}),
    BillRow(
        "refund",
        "ord_1",
        "4200001",
        234,
        AT + dt.timedelta(hours=1),
        "rfd_1",
        "5000001",
        extra={"total_fen": "1234"},
    ),
]


def test_wechatpay_bill_round_trip_with_backquoted_fields() -> None:
    data = wechatpay_bill.build_trade_bill(ROWS, appid="wx1", mchid="190", descriptions={})
    text = data.decode()
    assert "`2026-11-21 10:30:00,`wx1,`190," in text  # Beijing time, backquote-prefixed
    rows = wechatpay_bill.parse_trade_bill(data)
    assert [(r.kind, r.amount_fen, r.fee_fen, r.out_refund_no) for r in rows] == [
        ("payment", 1234, 7, None),
        ("refund", 234, 0, "rfd_1"),
    ]
    assert rows[0].occurred_at == AT


def test_wechatpay_bill_summary_must_match_rows() -> None:
    data = wechatpay_bill.build_trade_bill(ROWS, appid="wx1", mchid="190", descriptions={})
    lines = data.decode().split("\r\n")
    lines[1] = lines[1].replace("`12.34", "`12.35", 1)  # one row edited, summary untouched
    with pytest.raises(BillIntegrityFailed):
        wechatpay_bill.parse_trade_bill("\r\n".join(lines).encode())
    with pytest.raises(BillIntegrityFailed):
        wechatpay_bill.parse_trade_bill(b"not,a,bill\r\n")


def _alipay(rows: list[BillRow]) -> bytes:
    return alipay_bill.build_trade_bill(rows, pid="2088", day=AT.date(), subjects={})


def test_alipay_bill_round_trip() -> None:
    rows = alipay_bill.parse_trade_bill(_alipay(ROWS))
    assert [(r.kind, r.amount_fen, r.fee_fen, r.out_refund_no) for r in rows] == [
        ("payment", 1234, 7, None),
        ("refund", 234, 0, "rfd_1"),
    ]


def test_alipay_bill_footer_and_crc_checked() -> None:
    data = _alipay(ROWS)
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        name = z.namelist()[0]
        text = z.read(name).decode("gbk")
    short = io.BytesIO()
    with zipfile.ZipFile(short, "w") as z:  # a row dropped, the footer still says 1 + 1
        kept = [line for line in text.split("\r\n") if "rfd_1" not in line]
        z.writestr(name, "\r\n".join(kept).encode("gbk"))
    with pytest.raises(BillIntegrityFailed):
        alipay_bill.parse_trade_bill(short.getvalue())
    stored = io.BytesIO()
    with zipfile.ZipFile(stored, "w", zipfile.ZIP_STORED) as z:
        z.writestr(name, text.encode("gbk"))
    corrupted = bytearray(stored.getvalue())
    corrupted[corrupted.index(b"ord_1") + 4] ^= 1  # a flipped bit: CRC-32 mismatch
    with pytest.raises(BillIntegrityFailed):
        alipay_bill.parse_trade_bill(bytes(corrupted))
    with pytest.raises(BillIntegrityFailed):
        alipay_bill.parse_trade_bill(b"PK\x03\x04 truncated")
