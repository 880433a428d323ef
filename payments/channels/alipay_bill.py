"""The Alipay daily trade bill (``alipay.data.dataservice.bill.downloadurl.query``, type trade).

The download is a zip holding ``{pid}_{yyyymmdd}_业务明细.csv``: GBK text, ``#`` comment
lines around a CSV table of trades (业务类型 ``交易``) and refunds (``退款``), amounts in
yuan, times Beijing time, and a footer ``#交易合计：N笔，退款合计：M笔``. Alipay publishes no
hash of the file, so integrity is the zip's CRC-32 of every member plus the footer counts
matching the rows.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import zipfile
from collections.abc import Iterable

from payments.channels.money import fen_to_yuan, yuan_to_fen
from payments.errors import BillIntegrityFailed, InvalidAmount
from payments.ports import BillRow

BEIJING = dt.timezone(dt.timedelta(hours=8))
HEADER = (
    "支付宝交易号,商户订单号,业务类型,商品名称,创建时间,完成时间,门店编号,门店名称,操作员,终端号,"
    "对方账户,订单金额（元）,商家实收（元）,支付宝红包（元）,集分宝（元）,支付宝优惠（元）,"
    "商家优惠（元）,券核销金额（元）,券名称,商家红包消费金额（元）,卡消费金额（元）,"
    "退款批次号/请求号,服务费（元）,分润（元）,备注"
).split(",")
_FOOTER = re.compile(r"^#交易合计：(\d+)笔，退款合计：(\d+)笔")
_TIME = "%Y-%m-%d %H:%M:%S"


def build_trade_bill(
    rows: Iterable[BillRow], *, pid: str, day: dt.date, subjects: dict[str, str]
) -> bytes:
    """Render the zip (the simulator uses this; kept beside the parser for symmetry)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    out.write(f"#支付宝业务明细查询\r\n#账号：[{pid}0156]\r\n")
    out.write(f"#起始日期：[{day:%Y年%m月%d日} 00:00:00]\r\n")
    out.write(
        "#-----------------------------------------业务明细列表----------------------------\r\n"
    )
    writer.writerow(HEADER)
    trades = refunds = 0
    for r in rows:
        is_refund = r.kind == "refund"
        when = r.occurred_at.astimezone(BEIJING).strftime(_TIME)
        fields = dict.fromkeys(HEADER, "")
        fields.update(
            {
                "支付宝交易号": r.transaction_id,
                "商户订单号": r.out_trade_no,
                "业务类型": "退款" if is_refund else "交易",
                "商品名称": subjects.get(r.out_trade_no, ""),
                "创建时间": when,
                "完成时间": when,
                "订单金额（元）": fen_to_yuan(int(r.extra.get("total_fen", r.amount_fen))),
                "商家实收（元）": fen_to_yuan(-r.amount_fen if is_refund else r.amount_fen),
                "退款批次号/请求号": r.out_refund_no or "",
                "服务费（元）": fen_to_yuan(r.fee_fen if is_refund else -r.fee_fen),
            }
        )
        writer.writerow([fields[h] for h in HEADER])
        refunds += is_refund
        trades += not is_refund
    out.write(
        "#-----------------------------------------业务明细列表结束------------------------\r\n"
    )
    out.write(f"#交易合计：{trades}笔，退款合计：{refunds}笔\r\n")
    out.write(f"#导出时间：[{dt.datetime.now(BEIJING):%Y年%m月%d日 %H:%M:%S}]\r\n")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(f"{pid}_{day:%Y%m%d}_业务明细.csv", out.getvalue().encode("gbk"))
    return buffer.getvalue()


def parse_trade_bill(data: bytes) -> list[BillRow]:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            if z.testzip() is not None:
                raise BillIntegrityFailed("a bill file fails its CRC-32")
            names = [n for n in z.namelist() if n.endswith("_业务明细.csv")]
            if len(names) != 1:
                raise BillIntegrityFailed("the bill zip has no detail file")
            text = z.read(names[0]).decode("gbk")
    except (zipfile.BadZipFile, UnicodeDecodeError, OSError) as exc:
        raise BillIntegrityFailed("the bill is not a readable zip") from exc
    lines = text.splitlines()
    table = [line for line in lines if line and not line.startswith("#")]
    footer = [m for m in map(_FOOTER.match, lines) if m]
    try:
        records = list(csv.reader(table))
        if not records or records[0] != HEADER or len(footer) != 1:
            raise BillIntegrityFailed("unexpected bill layout")
        rows = [_row(dict(zip(HEADER, record, strict=True))) for record in records[1:]]
    except (ValueError, InvalidAmount) as exc:
        raise BillIntegrityFailed("malformed bill row") from exc
    counted = (sum(r.kind == "payment" for r in rows), sum(r.kind == "refund" for r in rows))
    if counted != (int(footer[0].group(1)), int(footer[0].group(2))):
        raise BillIntegrityFailed("bill footer counts do not match its rows")
    return rows


def _row(f: dict[str, str]) -> BillRow:
    is_refund = f["业务类型"] == "退款"
    received = yuan_to_fen(f["商家实收（元）"])
    when = dt.datetime.strptime(f["完成时间"], _TIME).replace(tzinfo=BEIJING)
    fee = yuan_to_fen(f["服务费（元）"] or "0")
    return BillRow(
        kind="refund" if is_refund else "payment",
        out_trade_no=f["商户订单号"],
        transaction_id=f["支付宝交易号"],
        amount_fen=-received if is_refund else received,
        occurred_at=when.astimezone(dt.UTC),
        out_refund_no=f["退款批次号/请求号"] or None,
        fee_fen=abs(fee),
        extra={"business_type": f["业务类型"]},
    )
