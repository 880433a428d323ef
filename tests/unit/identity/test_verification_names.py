"""The name typed for real-name verification: normalised, and implausible input refused."""

from __future__ import annotations

import pytest

from identity.errors import ValidationError
from identity.verification.names import normalise_name


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("张三丰", "张三丰"),
        ("  张三丰 ", "张三丰"),
        ("阿卜杜・热合曼", "阿卜杜·热合曼"),  # katakana middle dot folded to U+00B7
        ("John  O'Neil-Smith", "John O'Neil-Smith"),
        ("Jose\u0301", "Jos\u00e9"),  # NFC: combining acute composed
    ],
)
def test_names_are_normalised(typed: str, stored: str) -> None:
    assert normalise_name(typed) == stored


@pytest.mark.parametrize("typed", ["", "   ", "张3", "<b>", "·张", "x" * 61, None, 7, "张\n三"])
def test_implausible_names_are_refused_without_echo(typed: object) -> None:
    with pytest.raises(ValidationError) as caught:
        normalise_name(typed)
    assert caught.value.field == "name"
    if isinstance(typed, str) and typed.strip():
        assert typed.strip() not in caught.value.detail
