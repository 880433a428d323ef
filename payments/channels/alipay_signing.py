"""Alipay OpenAPI RSA2 signatures ("自行实现验签" in the Alipay open platform docs).

- request and app order string: sort every non-empty parameter except ``sign`` by name
  (ASCII), join as ``k=v`` with ``&`` (values raw, not URL-encoded), SHA256withRSA by the
  app private key, base64;
- asynchronous notification: the same, excluding ``sign`` and ``sign_type``, verified with
  the Alipay public key;
- response ``{"alipay_trade_query_response": {...}, "sign": "..."}``: the signature covers
  the exact text of the ``*_response`` value as sent, so it is cut out of the body verbatim
  rather than re-serialised.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from urllib.parse import urlencode

from cryptography.hazmat.primitives.asymmetric import rsa as crsa

from payments.channels import rsa

REQUEST_EXCLUDED = frozenset({"sign"})
NOTIFICATION_EXCLUDED = frozenset({"sign", "sign_type"})


def canonical(params: Mapping[str, str], excluded: frozenset[str] = REQUEST_EXCLUDED) -> str:
    return "&".join(
        f"{k}={params[k]}" for k in sorted(params) if k not in excluded and params[k] != ""
    )


def sign_params(params: Mapping[str, str], key: crsa.RSAPrivateKey) -> str:
    return rsa.sign(key, canonical(params).encode("utf-8"))


def verify_params(
    params: Mapping[str, str],
    key: crsa.RSAPublicKey,
    excluded: frozenset[str] = REQUEST_EXCLUDED,
) -> bool:
    signature = params.get("sign", "")
    if not signature or params.get("sign_type", "RSA2") != "RSA2":
        return False
    return rsa.verify(key, canonical(params, excluded).encode("utf-8"), signature)


def order_string(params: Mapping[str, str], key: crsa.RSAPrivateKey) -> str:
    """The signed, URL-encoded string the Alipay app SDK takes (``alipay.trade.app.pay``)."""
    return urlencode({**params, "sign": sign_params(params, key)})


def response_key(method: str) -> str:
    return method.replace(".", "_") + "_response"


def signed_response(method: str, content: Mapping[str, object], key: crsa.RSAPrivateKey) -> bytes:
    """A gateway response body (the simulator's side)."""
    node = json.dumps(content, ensure_ascii=False, separators=(",", ":"))
    signature = rsa.sign(key, node.encode("utf-8"))
    return f'{{"{response_key(method)}":{node},"sign":"{signature}"}}'.encode()


def split_response(body: bytes, method: str) -> tuple[str, dict[str, object], str | None]:
    """Return the raw ``*_response`` text, its parsed value and the ``sign``, from a body.

    Raises ``ValueError`` when the body is not a gateway response for ``method``.
    """
    text = body.decode("utf-8")
    document = json.loads(text)
    key = response_key(method)
    if not isinstance(document, dict):
        raise ValueError("response is not a JSON object")
    if key not in document:
        key = "error_response"  # what the gateway answers for an unknown method
    content = document.get(key)
    if not isinstance(content, dict):
        raise ValueError(f"response has no {key}")
    marker = f'"{key}"'
    start = text.index(marker) + len(marker)
    start = text.index(":", start) + 1
    while text[start] in " \t\r\n":
        start += 1
    _, end = json.JSONDecoder().raw_decode(text, start)
    sign = document.get("sign")
    return text[start:end], content, sign if isinstance(sign, str) else None
