"""Keys the merchant and the channel each hold, generated into and loaded from a directory.

In production the merchant side is what the merchant platform hands out (WeChat Pay: the
merchant API private key and certificate serial, the platform public key and its serial, the
32-byte APIv3 key; Alipay: the app private key and the Alipay public key) and is placed in the
same files. For development and tests ``ensure_channel_credentials`` generates both sides so a
simulator can play the channel. Layout::

    DIR/wechatpay/config.json          {"mchid", "appid", "merchant_serial", "platform_serial"}
    DIR/wechatpay/merchant_private.pem  merchant_public.pem  platform_private.pem
    DIR/wechatpay/platform_public.pem   apiv3.key (32 ASCII characters)
    DIR/alipay/config.json              {"app_id", "pid"}
    DIR/alipay/app_private.pem  app_public.pem  alipay_private.pem  alipay_public.pem

Private keys and the APIv3 key are written with mode 0600.
"""

from __future__ import annotations

import json
import os
import secrets
import string
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import rsa as crsa

from payments.channels import rsa


@dataclass(frozen=True)
class WechatPayMerchantCredentials:
    mchid: str
    appid: str
    private_key: crsa.RSAPrivateKey
    serial_no: str  # serial of the merchant API certificate
    platform_public_keys: dict[str, crsa.RSAPublicKey]  # by platform serial (rotation)
    apiv3_key: bytes  # 32 bytes, AEAD_AES_256_GCM key of callbacks


@dataclass(frozen=True)
class WechatPayPlatformCredentials:
    mchid: str
    appid: str
    private_key: crsa.RSAPrivateKey
    serial_no: str  # serial the platform signs with (``Wechatpay-Serial``)
    merchant_public_keys: dict[str, crsa.RSAPublicKey]  # by merchant certificate serial
    apiv3_key: bytes


@dataclass(frozen=True)
class AlipayAppCredentials:
    app_id: str
    pid: str  # the merchant's partner id (2088...), appears in bills
    private_key: crsa.RSAPrivateKey
    alipay_public_key: crsa.RSAPublicKey


@dataclass(frozen=True)
class AlipayPlatformCredentials:
    app_id: str
    pid: str
    private_key: crsa.RSAPrivateKey
    app_public_key: crsa.RSAPublicKey


def _write(path: Path, data: bytes, secret: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    fd = os.open(path, flags, 0o600 if secret else 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _serial() -> str:
    # WeChat certificate serials are 40 upper-case hex digits.
    return secrets.token_hex(20).upper()


def _generate_wechatpay(d: Path) -> None:
    merchant, platform = rsa.generate_private_key(), rsa.generate_private_key()
    alphabet = string.ascii_letters + string.digits
    apiv3 = "".join(secrets.choice(alphabet) for _ in range(32))
    _write(d / "merchant_private.pem", rsa.private_key_to_pem(merchant), True)
    _write(d / "merchant_public.pem", rsa.public_key_to_pem(merchant.public_key()), False)
    _write(d / "platform_private.pem", rsa.private_key_to_pem(platform), True)
    _write(d / "platform_public.pem", rsa.public_key_to_pem(platform.public_key()), False)
    _write(d / "apiv3.key", apiv3.encode(), True)
    config = {
        "mchid": str(1900000000 + secrets.randbelow(99999)),
        "appid": "wx" + secrets.token_hex(8),
        "merchant_serial": _serial(),
        "platform_serial": _serial(),
    }
    # config.json last: its presence marks a complete set.
    _write(d / "config.json", json.dumps(config, indent=2).encode(), False)


def _generate_alipay(d: Path) -> None:
    app, alipay = rsa.generate_private_key(), rsa.generate_private_key()
    _write(d / "app_private.pem", rsa.private_key_to_pem(app), True)
    _write(d / "app_public.pem", rsa.public_key_to_pem(app.public_key()), False)
    _write(d / "alipay_private.pem", rsa.private_key_to_pem(alipay), True)
    _write(d / "alipay_public.pem", rsa.public_key_to_pem(alipay.public_key()), False)
    config = {
        "app_id": "2021" + "".join(secrets.choice(string.digits) for _ in range(12)),
        "pid": "2088" + "".join(secrets.choice(string.digits) for _ in range(12)),
    }
    _write(d / "config.json", json.dumps(config, indent=2).encode(), False)


def ensure_channel_credentials(directory: str | Path) -> None:
    """Generate both sides' keys for every channel whose directory is not complete yet."""
    base = Path(directory)
    if not (base / "wechatpay" / "config.json").exists():
        _generate_wechatpay(base / "wechatpay")
    if not (base / "alipay" / "config.json").exists():
        _generate_alipay(base / "alipay")


def _config(d: Path) -> dict[str, str]:
    data = json.loads((d / "config.json").read_text())
    return {str(k): str(v) for k, v in data.items()}


def _apiv3_key(d: Path) -> bytes:
    key = (d / "apiv3.key").read_bytes().strip()
    if len(key) != 32:
        raise ValueError("the WeChat Pay APIv3 key must be 32 bytes")
    return key


def load_wechatpay_merchant(directory: str | Path) -> WechatPayMerchantCredentials:
    d = Path(directory) / "wechatpay"
    cfg = _config(d)
    return WechatPayMerchantCredentials(
        mchid=cfg["mchid"],
        appid=cfg["appid"],
        private_key=rsa.private_key_from_pem((d / "merchant_private.pem").read_bytes()),
        serial_no=cfg["merchant_serial"],
        platform_public_keys={
            cfg["platform_serial"]: rsa.public_key_from_pem(
                (d / "platform_public.pem").read_bytes()
            )
        },
        apiv3_key=_apiv3_key(d),
    )


def load_wechatpay_platform(directory: str | Path) -> WechatPayPlatformCredentials:
    d = Path(directory) / "wechatpay"
    cfg = _config(d)
    return WechatPayPlatformCredentials(
        mchid=cfg["mchid"],
        appid=cfg["appid"],
        private_key=rsa.private_key_from_pem((d / "platform_private.pem").read_bytes()),
        serial_no=cfg["platform_serial"],
        merchant_public_keys={
            cfg["merchant_serial"]: rsa.public_key_from_pem(
                (d / "merchant_public.pem").read_bytes()
            )
        },
        apiv3_key=_apiv3_key(d),
    )


def load_alipay_app(directory: str | Path) -> AlipayAppCredentials:
    d = Path(directory) / "alipay"
    cfg = _config(d)
    return AlipayAppCredentials(
        app_id=cfg["app_id"],
        pid=cfg["pid"],
        private_key=rsa.private_key_from_pem((d / "app_private.pem").read_bytes()),
        alipay_public_key=rsa.public_key_from_pem((d / "alipay_public.pem").read_bytes()),
    )


def load_alipay_platform(directory: str | Path) -> AlipayPlatformCredentials:
    d = Path(directory) / "alipay"
    cfg = _config(d)
    return AlipayPlatformCredentials(
        app_id=cfg["app_id"],
        pid=cfg["pid"],
        private_key=rsa.private_key_from_pem((d / "alipay_private.pem").read_bytes()),
        app_public_key=rsa.public_key_from_pem((d / "app_public.pem").read_bytes()),
    )
