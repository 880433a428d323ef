"""RFC 9285 Base45: the RFC's own examples, strict rejection, and round trips."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ecert.presentation import base45


@pytest.mark.parametrize(
    ("raw", "text"),
    [
        (b"AB", "BB8"),  # RFC 9285 section 4.3
        (b"Hello!!", "%69 VD92EX0"),
        (b"base-45", "UJCLQE7W581"),
        (b"ietf!", "QED8WEX0"),  # section 4.4
        (b"", ""),
        (b"\x00", "00"),
        (b"\xff\xff", "FGW"),
    ],
)
def test_rfc_examples_encode_and_decode(raw: bytes, text: str) -> None:
    assert base45.encode(raw) == text
    assert base45.decode(text) == raw


@pytest.mark.parametrize(
    "bad",
    [
        "GGW",  # 16 + 16*45 + 32*2025 = 65536: triplet overflows two bytes
        "::",  # 44 + 44*45 = 2024: final pair overflows one byte
        "A",  # length 1 mod 3
        "BB8A",
        "bb8",  # lower case is not in the alphabet
        "BB#",
        "BB8\n",
    ],
)
def test_non_canonical_text_is_rejected(bad: str) -> None:
    with pytest.raises(base45.Base45Error):
        base45.decode(bad)


@given(st.binary(max_size=600))
def test_round_trip(data: bytes) -> None:
    text = base45.encode(data)
    assert set(text) <= set(base45.ALPHABET)
    assert base45.decode(text) == data


@given(st.text(max_size=60))
def test_decode_raises_only_base45_error(text: str) -> None:
    try:
        data = base45.decode(text)
    except base45.Base45Error:
        return
    assert base45.encode(data) == text  # whatever decodes is canonical
