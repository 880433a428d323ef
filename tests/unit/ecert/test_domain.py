"""Certificate types: schema validation, masking and what a QR profile shows."""

from __future__ import annotations

import pytest

from ecert.domain import mask_id, mask_name, parse_time, parse_type
from identity.errors import ValidationError

SCHEMA = {
    "fields": [
        {"key": "name", "mask": "name", "qr": True},
        {"key": "id_number", "mask": "id", "qr": True},
        {"key": "plate", "qr": True},
        {"key": "vin", "required": False},
    ],
    "name_field": "name",
    "id_field": "id_number",
    "validity": {"max_days": 10},
    "issuer_units": ["sz-traffic-police"],
}


def test_masks() -> None:
    assert mask_name("欧阳娜娜") == "欧*" and mask_name("") == ""
    assert mask_id("440305198608126485") == "4403**********6485"
    assert mask_id("1234567") == "1******"


def test_profiles_show_masked_fields_only() -> None:
    t = parse_type("vl", "行驶证", "Vehicle licence", SCHEMA)
    claims = t.validate_claims(
        {"name": "张三丰", "id_number": "440303199001018578", "plate": "粤B12345", "vin": "X"}
    )
    assert t.display(claims, "minimal") == ("张*", "4403**********8578", {})
    assert t.display(claims, "standard") == ("张*", "4403**********8578", {"plate": "粤B12345"})


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"code": "much-too-long"}, "code"),
        ({"code": "UP"}, "code"),
        ({"schema": {**SCHEMA, "name_field": "nope"}}, "schema"),
        ({"schema": {**SCHEMA, "fields": [{"key": "Bad Key"}]}}, "schema.fields"),
        ({"schema": {**SCHEMA, "fields": [{"key": "a", "mask": "rot13"}]}}, "schema.fields"),
        ({"schema": {**SCHEMA, "validity": {"max_days": 0}}}, "schema.validity.max_days"),
        ({"name_en": " "}, "name_en"),
    ],
)
def test_bad_type_definitions(change: dict[str, object], field: str) -> None:
    args = {"code": "vl", "name_zh": "行驶证", "name_en": "Vehicle licence", "schema": SCHEMA}
    args.update(change)
    with pytest.raises(ValidationError) as err:
        parse_type(args["code"], args["name_zh"], args["name_en"], args["schema"])
    assert err.value.field == field


def test_claims_validation() -> None:
    t = parse_type("vl", "行驶证", "Vehicle licence", SCHEMA)
    with pytest.raises(ValidationError, match="required"):
        t.validate_claims({"name": "x", "id_number": "y"})
    with pytest.raises(ValidationError):
        t.validate_claims({"name": "x", "id_number": "y", "plate": 5})
    with pytest.raises(ValidationError):
        t.validate_claims(["not", "a", "map"])


def test_times() -> None:
    assert parse_time("t", "2030-01-02").isoformat() == "2030-01-02T00:00:00+00:00"  # type: ignore[union-attr]
    assert parse_time("t", "2030-01-02T08:00:00+08:00").hour == 8  # type: ignore[union-attr]
    assert parse_time("t", None) is None
    with pytest.raises(ValidationError):
        parse_time("t", "soon")
