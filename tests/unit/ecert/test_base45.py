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


def _reference_decode(text: str) -> bytes | None:
    """RFC 9285 section 4.2 one chunk at a time; None where the text is not canonical."""
    if len(text) % 3 == 1 or any(c not in base45.ALPHABET for c in text):
        return None
    v = [base45.ALPHABET.index(c) for c in text]
    out = bytearray()
    for i in range(0, len(v) - len(v) % 3, 3):
        n = v[i] + v[i + 1] * 45 + v[i + 2] * 2025
        if n > 0xFFFF:
            return None
        out += n.to_bytes(2, "big")
    if len(v) % 3:
        n = v[-2] + v[-1] * 45
        if n > 0xFF:
            return None
        out.append(n)
    return bytes(out)


@given(st.text(alphabet=base45.ALPHABET + "a#é", max_size=400))
def test_vectorised_decoder_matches_the_rfc_one_chunk_at_a_time(text: str) -> None:
    expected = _reference_decode(text)
    if expected is None:
        with pytest.raises(base45.Base45Error):
            base45.decode(text)
    else:
        assert base45.decode(text) == expected


@given(st.lists(st.sampled_from(["GGW", "FGW", "::", "00", ":::", "ZZZ"]), max_size=80))
def test_overflow_anywhere_is_found(chunks: list[str]) -> None:
    text = "".join(chunks)
    assert (_reference_decode(text) is None) == _raises(text)


def _raises(text: str) -> bool:
    try:
        base45.decode(text)
    except base45.Base45Error:
        return True
    return False
