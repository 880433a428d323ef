"""The WeChat Pay bill download refuses a file whose SHA1 differs or a link off the host.

The channel is played by an ``httpx.MockTransport`` that signs with the platform key, so
that only the integrity rules are under test (the full flow runs against the simulator in
tests/integration/payments).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import httpx
import pytest

from payments.channels import wechatpay_bill
from payments.channels import wechatpay_signing as signing
from payments.channels.credentials import (
    ensure_channel_credentials,
    load_wechatpay_merchant,
    load_wechatpay_platform,
)
from payments.channels.wechatpay import WechatPayChannel
from payments.errors import BillIntegrityFailed
from payments.ports import BillRow

BASE = "https://api.mch.weixin.qq.com"
ROW = BillRow("payment", "ord_1", "4200001", 1234, dt.datetime(2026, 11, 21, 2, tzinfo=dt.UTC))


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("keys")
    ensure_channel_credentials(directory)
    return directory


def _channel(keys: Path, download_url: str, served: bytes, hashed: bytes) -> WechatPayChannel:
    platform = load_wechatpay_platform(keys)

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v3/bill/tradebill":
            meta = {
                "hash_type": "SHA1",
                "hash_value": hashlib.sha1(hashed, usedforsecurity=False).hexdigest(),
                "download_url": download_url,
            }
            body = json.dumps(meta).encode()
            headers = signing.signed_headers(platform.private_key, platform.serial_no, body)
            return httpx.Response(200, content=body, headers=headers)
        return httpx.Response(200, content=served)

    http = httpx.AsyncClient(transport=httpx.MockTransport(handle))
    return WechatPayChannel(
        http, load_wechatpay_merchant(keys), notify_url=f"{BASE}/n", base_url=BASE
    )


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_bill_with_matching_sha1_is_parsed(keys: Path) -> None:
    data = wechatpay_bill.build_trade_bill([ROW], appid="wx", mchid="1", descriptions={})
    channel = _channel(keys, f"{BASE}/v3/billdownload/file?token=t", data, data)
    rows = await channel.download_bill(dt.date(2026, 11, 21))
    assert [(r.out_trade_no, r.amount_fen) for r in rows] == [("ord_1", 1234)]


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_bill_whose_sha1_differs_is_refused(keys: Path) -> None:
    data = wechatpay_bill.build_trade_bill([ROW], appid="wx", mchid="1", descriptions={})
    altered = data.replace(b"ord_1", b"ord_2")  # still self-consistent, but not what was hashed
    channel = _channel(keys, f"{BASE}/v3/billdownload/file?token=t", altered, data)
    with pytest.raises(BillIntegrityFailed):
        await channel.download_bill(dt.date(2026, 11, 21))


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_bill_link_to_another_host_is_not_followed(keys: Path) -> None:
    data = wechatpay_bill.build_trade_bill([ROW], appid="wx", mchid="1", descriptions={})
    channel = _channel(keys, "https://evil.example/v3/billdownload/file?token=t", data, data)
    with pytest.raises(BillIntegrityFailed):
        await channel.download_bill(dt.date(2026, 11, 21))
