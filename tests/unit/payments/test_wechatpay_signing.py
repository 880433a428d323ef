"""WeChat Pay v3 signing strings, Authorization header, response verification and AEAD."""

from __future__ import annotations

import base64
import datetime as dt

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa as crsa

from payments.channels import rsa
from payments.channels import wechatpay_signing as signing
from payments.errors import CallbackBadSignature, CallbackMalformed, CallbackStale


@pytest.fixture(scope="module")
def key() -> crsa.RSAPrivateKey:
    return rsa.generate_private_key()


def test_request_message_is_the_documented_five_lines() -> None:
    body = '{"appid":"wxd678efh567hg6787"}'
    assert signing.request_message(
        "post", "/v3/pay/transactions/jsapi", "1554208460", "593BEC0C930BF1AFEB40B4A08C8FB242", body
    ) == (
        b"POST\n/v3/pay/transactions/jsapi\n1554208460\n593BEC0C930BF1AFEB40B4A08C8FB242\n"
        b'{"appid":"wxd678efh567hg6787"}\n'
    )
    # GET: the query string is part of the URL line and the empty body still ends in "\n".
    assert signing.request_message("GET", "/v3/x?mchid=1", "1", "N", "") == (
        b"GET\n/v3/x?mchid=1\n1\nN\n\n"
    )


def test_response_message() -> None:
    assert signing.response_message("1", "N", b"{}") == b"1\nN\n{}\n"


def test_authorization_round_trip(key: crsa.RSAPrivateKey) -> None:
    header = signing.authorization(
        mchid="1900000001",
        serial_no="ABC",
        key=key,
        method="GET",
        url="/v3/x",
        body="",
        timestamp="1700000000",
        nonce_str="NONCE",
    )
    assert header.startswith('WECHATPAY2-SHA256-RSA2048 mchid="1900000001",nonce_str="NONCE",')
    fields = signing.parse_authorization(header)
    assert fields is not None and fields["serial_no"] == "ABC"
    message = signing.request_message("GET", "/v3/x", "1700000000", "NONCE", "")
    assert rsa.verify(key.public_key(), message, fields["signature"])


@pytest.mark.parametrize(
    "header",
    [
        "",
        'WECHATPAY2-SHA256-RSA1024 mchid="1",nonce_str="n",signature="s",timestamp="1",'
        'serial_no="x"',
        'WECHATPAY2-SHA256-RSA2048 mchid="1",nonce_str="n",signature="s",timestamp="1"',
        'WECHATPAY2-SHA256-RSA2048 mchid="1",mchid="2",nonce_str="n",signature="s",timestamp="1"',
        'WECHATPAY2-SHA256-RSA2048 mchid=1,nonce_str="n",signature="s",timestamp="1",serial_no="x"',
    ],
)
def test_malformed_authorization_headers_are_refused(header: str) -> None:
    assert signing.parse_authorization(header) is None


def test_signed_headers_verify_within_five_minutes(key: crsa.RSAPrivateKey) -> None:
    sent = dt.datetime(2026, 11, 22, 2, 0, tzinfo=dt.UTC)
    headers = signing.signed_headers(key, "SERIAL", b'{"a":1}', sent)
    keys = {"SERIAL": key.public_key()}
    signing.verify_signed(headers, b'{"a":1}', keys, sent + dt.timedelta(minutes=5))
    lower = {k.lower(): v for k, v in headers.items()}  # header names are case-insensitive
    signing.verify_signed(lower, b'{"a":1}', keys, sent - dt.timedelta(minutes=4))
    with pytest.raises(CallbackStale):
        signing.verify_signed(headers, b'{"a":1}', keys, sent + dt.timedelta(minutes=5, seconds=1))
    with pytest.raises(CallbackBadSignature):
        signing.verify_signed(headers, b'{"a":2}', keys, sent)
    with pytest.raises(CallbackBadSignature):  # unknown platform serial
        signing.verify_signed(headers, b'{"a":1}', {"OTHER": key.public_key()}, sent)
    with pytest.raises(CallbackBadSignature):
        signing.verify_signed({**headers, "Wechatpay-Timestamp": "1"}, b'{"a":1}', keys, sent)


def test_resource_decrypts_and_detects_tampering() -> None:
    apiv3 = b"0123456789abcdef0123456789abcdef"
    resource = signing.encrypt_resource(apiv3, b'{"x":1}', "transaction", "transaction")
    assert signing.decrypt_resource(apiv3, resource) == b'{"x":1}'
    with pytest.raises(CallbackBadSignature):
        signing.decrypt_resource(apiv3, {**resource, "associated_data": "refund"})
    with pytest.raises(CallbackBadSignature):
        signing.decrypt_resource(b"f" * 32, resource)
    flipped = bytearray(base64.b64decode(resource["ciphertext"]))
    flipped[0] ^= 1
    with pytest.raises(CallbackBadSignature):
        signing.decrypt_resource(
            apiv3, {**resource, "ciphertext": base64.b64encode(flipped).decode()}
        )
    with pytest.raises(CallbackMalformed):
        signing.decrypt_resource(apiv3, {**resource, "algorithm": "AEAD_AES_128_GCM"})


def test_app_and_jsapi_pay_sign_strings(key: crsa.RSAPrivateKey) -> None:
    app = signing.app_pay_params("wx1", "190", "wx2", key, "1700000000", "N")
    assert rsa.verify(key.public_key(), b"wx1\n1700000000\nN\nwx2\n", app["sign"])
    js = signing.jsapi_pay_params("wx1", "wx2", key, "1700000000", "N")
    assert rsa.verify(key.public_key(), b"wx1\n1700000000\nN\nprepay_id=wx2\n", js["paySign"])
