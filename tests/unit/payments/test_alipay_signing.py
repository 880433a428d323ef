"""Alipay RSA2 canonicalisation and response splitting."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa as crsa

from payments.channels import alipay_signing as signing
from payments.channels import rsa


@pytest.fixture(scope="module")
def key() -> crsa.RSAPrivateKey:
    return rsa.generate_private_key()


PARAMS = {
    "method": "alipay.trade.query",
    "app_id": "2021000000000000",
    "biz_content": '{"out_trade_no":"ord_1"}',
    "sign_type": "RSA2",
    "sign": "ignored",
    "notify_url": "",
    "charset": "utf-8",
}


def test_request_canonical_sorts_and_drops_sign_and_empty_values() -> None:
    assert signing.canonical(PARAMS) == (
        'app_id=2021000000000000&biz_content={"out_trade_no":"ord_1"}&charset=utf-8'
        "&method=alipay.trade.query&sign_type=RSA2"
    )


def test_notification_canonical_also_drops_sign_type() -> None:
    assert signing.canonical(PARAMS, signing.NOTIFICATION_EXCLUDED) == (
        'app_id=2021000000000000&biz_content={"out_trade_no":"ord_1"}&charset=utf-8'
        "&method=alipay.trade.query"
    )


def test_sorting_is_by_ascii_code_not_locale() -> None:
    assert signing.canonical({"b": "1", "B": "2", "a_b": "3", "ab": "4"}) == "B=2&a_b=3&ab=4&b=1"


def test_sign_verify_and_any_change_breaks_it(key: crsa.RSAPrivateKey) -> None:
    params = {k: v for k, v in PARAMS.items() if k != "sign"}
    signed = {**params, "sign": signing.sign_params(params, key)}
    assert signing.verify_params(signed, key.public_key())
    assert not signing.verify_params({**signed, "app_id": "2021000000000001"}, key.public_key())
    assert not signing.verify_params({**signed, "sign_type": "RSA"}, key.public_key())
    assert not signing.verify_params({**signed, "sign": "not base64!"}, key.public_key())


def test_response_signature_covers_the_verbatim_text(key: crsa.RSAPrivateKey) -> None:
    body = signing.signed_response("alipay.trade.query", {"code": "10000", "msg": "成功"}, key)
    raw, content, sign = signing.split_response(body, "alipay.trade.query")
    assert raw == '{"code":"10000","msg":"成功"}' and content["msg"] == "成功"
    assert sign is not None and rsa.verify(key.public_key(), raw.encode(), sign)
    # Whitespace the gateway might add does not change what is cut out.
    spaced = body.replace(b'_response":', b'_response" :  ')
    assert signing.split_response(spaced, "alipay.trade.query")[0] == raw


def test_unknown_method_answers_come_as_error_response() -> None:
    body = b'{"error_response":{"code":"40004","msg":"Business Failed"}}'
    raw, content, sign = signing.split_response(body, "alipay.trade.query")
    assert content["code"] == "40004" and sign is None
    with pytest.raises(ValueError):
        signing.split_response(b"[]", "alipay.trade.query")
