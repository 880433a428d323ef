"""WeChat Pay API v3 signatures and callback encryption.

Follows the v3 rules ("签名生成" / "签名验证" / "回调报文解密"):

- request: ``Authorization: WECHATPAY2-SHA256-RSA2048 mchid="..",nonce_str="..",
  signature="..",timestamp="..",serial_no=".."`` where signature is SHA256withRSA by the
  merchant key over ``METHOD\\nPATH?QUERY\\nTIMESTAMP\\nNONCE\\nBODY\\n``;
- response and callback: ``Wechatpay-Timestamp``/``-Nonce``/``-Signature``/``-Serial``, the
  signature by the platform key over ``TIMESTAMP\\nNONCE\\nBODY\\n``, timestamp within 5 min;
- callback ``resource``: AEAD_AES_256_GCM under the 32-byte APIv3 key, 12-byte nonce,
  ``associated_data`` as AAD, base64 ciphertext with the 16-byte tag appended;
- client pay parameters: APP ``appid\\ntimestamp\\nnoncestr\\nprepayid\\n``, JSAPI
  ``appId\\ntimeStamp\\nnonceStr\\npackage\\n``, both SHA256withRSA by the merchant key.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import re
import secrets
import string
from collections.abc import Mapping

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric import rsa as crsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from payments.channels import rsa
from payments.errors import CallbackBadSignature, CallbackMalformed, CallbackStale

SCHEMA = "WECHATPAY2-SHA256-RSA2048"
MAX_SKEW = dt.timedelta(minutes=5)
_AUTH_PARAM = re.compile(r'\s*([a-z_]+)="([^"]*)"\s*(?:,|$)')
_AUTH_FIELDS = {"mchid", "nonce_str", "signature", "timestamp", "serial_no"}


def nonce() -> str:
    """32 random characters from A-Z0-9 (here hex: 128 bits from the OS generator)."""
    return secrets.token_hex(16).upper()


def request_message(method: str, url: str, timestamp: str, nonce_str: str, body: str) -> bytes:
    """The string a merchant signs; ``url`` is the absolute path with its query string."""
    return f"{method.upper()}\n{url}\n{timestamp}\n{nonce_str}\n{body}\n".encode()


def response_message(timestamp: str, nonce_str: str, body: bytes) -> bytes:
    return timestamp.encode() + b"\n" + nonce_str.encode() + b"\n" + body + b"\n"


def authorization(
    *,
    mchid: str,
    serial_no: str,
    key: crsa.RSAPrivateKey,
    method: str,
    url: str,
    body: str,
    timestamp: str | None = None,
    nonce_str: str | None = None,
) -> str:
    ts = timestamp or str(int(dt.datetime.now(dt.UTC).timestamp()))
    nc = nonce_str or nonce()
    signature = rsa.sign(key, request_message(method, url, ts, nc, body))
    return (
        f'{SCHEMA} mchid="{mchid}",nonce_str="{nc}",signature="{signature}",'
        f'timestamp="{ts}",serial_no="{serial_no}"'
    )


def parse_authorization(header: str) -> dict[str, str] | None:
    """The five fields of a v3 ``Authorization`` header, or None if it is not one."""
    schema, _, params = header.partition(" ")
    if schema != SCHEMA:
        return None
    fields: dict[str, str] = {}
    pos = 0
    while pos < len(params):
        m = _AUTH_PARAM.match(params, pos)
        if not m or m.group(1) in fields:
            return None
        fields[m.group(1)] = m.group(2)
        pos = m.end()
    return fields if set(fields) == _AUTH_FIELDS else None


def signed_headers(
    key: crsa.RSAPrivateKey, serial_no: str, body: bytes, now: dt.datetime | None = None
) -> dict[str, str]:
    """Headers the platform adds to a response or callback."""
    ts = str(int((now or dt.datetime.now(dt.UTC)).timestamp()))
    nc = nonce()
    return {
        "Wechatpay-Timestamp": ts,
        "Wechatpay-Nonce": nc,
        "Wechatpay-Signature": rsa.sign(key, response_message(ts, nc, body)),
        "Wechatpay-Serial": serial_no,
        "Wechatpay-Signature-Type": SCHEMA,
    }


def verify_signed(
    headers: Mapping[str, str],
    body: bytes,
    public_keys: Mapping[str, crsa.RSAPublicKey],
    now: dt.datetime,
) -> None:
    """Check a platform-signed message; raise ``CallbackBadSignature`` or ``CallbackStale``."""
    h = {k.lower(): v for k, v in headers.items()}
    ts, nc = h.get("wechatpay-timestamp", ""), h.get("wechatpay-nonce", "")
    signature, serial = h.get("wechatpay-signature", ""), h.get("wechatpay-serial", "")
    if not (ts and nc and signature and serial):
        raise CallbackBadSignature("missing Wechatpay-* signature headers")
    sig_type = h.get("wechatpay-signature-type", SCHEMA)
    if sig_type != SCHEMA:
        raise CallbackBadSignature("unsupported signature type")
    key = public_keys.get(serial)
    if key is None:
        raise CallbackBadSignature("unknown platform certificate serial")
    if not rsa.verify(key, response_message(ts, nc, body), signature):
        raise CallbackBadSignature("signature does not match")
    # Checked after the signature so that the timestamp itself is authentic.
    if not (ts.isascii() and ts.isdigit()):
        raise CallbackBadSignature("malformed timestamp")
    sent = dt.datetime.fromtimestamp(int(ts), dt.UTC)
    if abs(now - sent) > MAX_SKEW:
        raise CallbackStale("timestamp outside the 5-minute window")


def decrypt_resource(apiv3_key: bytes, resource: Mapping[str, object]) -> bytes:
    """Decrypt a callback ``resource`` (AEAD_AES_256_GCM only)."""
    if resource.get("algorithm") != "AEAD_AES_256_GCM":
        raise CallbackMalformed("unsupported resource algorithm")
    nonce_str, aad, ct = (
        resource.get("nonce"),
        resource.get("associated_data", ""),
        resource.get("ciphertext"),
    )
    if not isinstance(nonce_str, str) or not isinstance(ct, str) or not isinstance(aad, str):
        raise CallbackMalformed("resource fields missing")
    try:
        data = base64.b64decode(ct, validate=True)
        return AESGCM(apiv3_key).decrypt(nonce_str.encode(), data, aad.encode() or None)
    except (binascii.Error, ValueError, InvalidTag) as exc:
        raise CallbackBadSignature("resource does not decrypt under the APIv3 key") from exc


def encrypt_resource(
    apiv3_key: bytes, plaintext: bytes, associated_data: str, original_type: str
) -> dict[str, str]:
    nonce_str = "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(12))
    ct = AESGCM(apiv3_key).encrypt(nonce_str.encode(), plaintext, associated_data.encode())
    return {
        "original_type": original_type,
        "algorithm": "AEAD_AES_256_GCM",
        "ciphertext": base64.b64encode(ct).decode(),
        "associated_data": associated_data,
        "nonce": nonce_str,
    }


def app_pay_params(
    appid: str, mchid: str, prepay_id: str, key: crsa.RSAPrivateKey, timestamp: str, nonce_str: str
) -> dict[str, str]:
    """Parameters for the WeChat OpenSDK ``PayReq`` (APP payment)."""
    message = f"{appid}\n{timestamp}\n{nonce_str}\n{prepay_id}\n".encode()
    return {
        "appid": appid,
        "partnerid": mchid,
        "prepayid": prepay_id,
        "package": "Sign=WXPay",
        "noncestr": nonce_str,
        "timestamp": timestamp,
        "sign": rsa.sign(key, message),
    }


def jsapi_pay_params(
    appid: str, prepay_id: str, key: crsa.RSAPrivateKey, timestamp: str, nonce_str: str
) -> dict[str, str]:
    """Parameters for ``WeixinJSBridge.invoke('getBrandWCPayRequest', ...)`` (JSAPI)."""
    package = f"prepay_id={prepay_id}"
    message = f"{appid}\n{timestamp}\n{nonce_str}\n{package}\n".encode()
    return {
        "appId": appid,
        "timeStamp": timestamp,
        "nonceStr": nonce_str,
        "package": package,
        "signType": "RSA",
        "paySign": rsa.sign(key, message),
    }
