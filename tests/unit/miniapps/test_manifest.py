"""Manifest validation and the gateway's verified-token cache."""

from __future__ import annotations

from typing import Any

import pytest

from identity.errors import ValidationError
from miniapps.domain import Manifest


def raw(**over: Any) -> dict[str, Any]:
    return {
        "name_zh": "交通违法处理",
        "name_en": "Traffic fines",
        "category": "traffic",
        "upstream": "https://fines.example.gov.cn/api",
        "contact": {"name": "李", "email": "it@example.gov.cn"},
        **over,
    }


def test_defaults_and_round_trip() -> None:
    m = Manifest.parse(raw())
    assert m.kind == "service" and m.min_assurance == "L1" and m.scopes == ("openid",)
    assert m.timeout_ms == 10_000 and m.citizen_limit["count"] == 120
    assert Manifest.parse(m.to_json()) == m


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("category", "casino"),
        ("kind", "game"),
        ("districts", ["4403"]),
        ("scopes", ["openid", "everything"]),
        ("min_assurance", "L4"),
        ("contact", {"name": "nobody"}),
        ("redirect_uris", ["http://evil.example/cb"]),
        ("timeout_ms", 60_000),
        ("rate_limit", {"app": {"count": 0, "period": 1}}),
        ("name_zh", ""),
        ("name_zh", "长" * 61),
    ],
)
def test_invalid_fields_are_named(field: str, value: Any) -> None:
    with pytest.raises(ValidationError) as err:
        Manifest.parse(raw(**{field: value}))
    assert err.value.field.split(".")[0] == field


@pytest.mark.parametrize("alg", ["ES256", "EdDSA"])
def test_hand_built_assertion_is_a_valid_jws(alg: str) -> None:
    from datetime import UTC, datetime

    import jwt

    from identity.keys import KeyRing, SigningKey, generate
    from identity.tokens import TokenService
    from miniapps.gateway import AssertionSigner

    key = SigningKey("k1", alg, generate(alg), datetime.now(UTC), None, None)
    tokens = TokenService(KeyRing([key]), issuer="https://issuer.example")
    signer = AssertionSigner(tokens)
    claims_json = '"sub":"pw_1","aud":"app_x","acr":"L2","ver":"1.0.0","scope":"openid"'
    one, two = signer.sign(claims_json, "req_1"), signer.sign(claims_json, "req_2")
    header = jwt.get_unverified_header(one)
    assert header == {"alg": alg, "kid": "k1", "typ": "superapp-identity+jwt"}
    got = jwt.decode(
        one, key.public_key, algorithms=[alg], audience="app_x", issuer="https://issuer.example"
    )
    assert got["sub"] == "pw_1" and got["acr"] == "L2" and got["rid"] == "req_1"
    assert got["exp"] - got["iat"] == 60 and got["jti"].startswith("jti_")
    assert jwt.decode(two, key.public_key, algorithms=[alg], audience="app_x")["rid"] == "req_2"
    forged = one[:-4] + ("AAAA" if not one.endswith("AAAA") else "BBBB")
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(forged, key.public_key, algorithms=[alg], audience="app_x")
