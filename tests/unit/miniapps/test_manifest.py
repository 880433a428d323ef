"""Manifest validation and the gateway's verified-token cache."""

from __future__ import annotations

import time
from typing import Any

import pytest

from identity.errors import InvalidToken, ValidationError
from identity.tokens import Principal
from miniapps.domain import Manifest
from miniapps.gateway import TtlCache


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


def test_token_cache_keeps_a_principal_only_until_it_expires() -> None:
    from miniapps.gateway import GatewayCore

    core = GatewayCore.__new__(GatewayCore)
    core._tokens = TtlCache(10, 3600)
    calls: list[str] = []

    def verify(token: str) -> Principal:
        calls.append(token)
        if token == "expired":
            raise InvalidToken("The token has expired.")
        exp = time.time() + (60 if token == "good" else -1)
        return Principal(sub="acc_1", kind="user", acr=1, claims={"exp": exp})

    assert core.principal("good", verify).sub == "acc_1"
    assert core.principal("good", verify).sub == "acc_1"
    assert calls == ["good"]
    core.principal("stale", verify)  # exp in the past: verified again next time
    core.principal("stale", verify)
    assert calls == ["good", "stale", "stale"]
