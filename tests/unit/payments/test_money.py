"""Exact yuan <-> fen conversion: money never passes through a float."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from payments.channels.money import fen_to_yuan, yuan_to_fen, yuan_to_fen_rounded
from payments.errors import InvalidAmount


@pytest.mark.parametrize(
    ("fen", "yuan"),
    [
        (0, "0.00"),
        (5, "0.05"),
        (10, "0.10"),
        (100, "1.00"),
        (1234, "12.34"),
        (-5, "-0.05"),
        (123456789012, "1234567890.12"),
    ],
)
def test_fen_to_yuan(fen: int, yuan: str) -> None:
    assert fen_to_yuan(fen) == yuan


@pytest.mark.parametrize(
    ("yuan", "fen"),
    [("12.34", 1234), ("12.3", 1230), ("12", 1200), ("0.01", 1), ("0.07", 7), (" 1.10 ", 110)],
)
def test_yuan_to_fen(yuan: str, fen: int) -> None:
    assert yuan_to_fen(yuan) == fen


@pytest.mark.parametrize("bad", ["12.345", "1e3", "abc", "", "NaN", "0.1.2", "+1", "1,00", ".5"])
def test_yuan_to_fen_refuses_what_is_not_an_exact_amount(bad: str) -> None:
    with pytest.raises(InvalidAmount):
        yuan_to_fen(bad)


def test_floats_and_bools_are_not_fen() -> None:
    with pytest.raises(InvalidAmount):
        fen_to_yuan(12.34)  # type: ignore[arg-type]
    with pytest.raises(InvalidAmount):
        fen_to_yuan(True)


@given(st.integers(min_value=-(10**12), max_value=10**12))
def test_round_trip(fen: int) -> None:
    assert yuan_to_fen(fen_to_yuan(fen)) == fen


def test_sub_fen_fees_round_half_up() -> None:
    assert yuan_to_fen_rounded("0.07404") == 7
    assert yuan_to_fen_rounded("0.00500") == 1
    assert yuan_to_fen_rounded("0.00499") == 0
    with pytest.raises(InvalidAmount):
        yuan_to_fen_rounded("Infinity")
