"""Exact conversion between integer fen and the yuan strings channels put on the wire.

Alipay amounts and both channels' bill files carry yuan as decimal strings ("12.34"). Floats
never touch money: parsing goes through ``decimal.Decimal`` and refuses sub-fen precision.
"""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from payments.errors import InvalidAmount

_YUAN = re.compile(r"^-?\d{1,12}(\.\d{1,2})?$")


def fen_to_yuan(fen: int) -> str:
    """Format fen as yuan with exactly two decimals: 1234 -> "12.34", 5 -> "0.05"."""
    if isinstance(fen, bool) or not isinstance(fen, int):
        raise InvalidAmount(f"fen must be an int, got {type(fen).__name__}")
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(fen), 100)
    return f"{sign}{whole}.{cents:02d}"


def yuan_to_fen(yuan: str) -> int:
    """Parse a yuan string exactly: "12.34" -> 1234, "12.3" -> 1230, "12" -> 1200."""
    text = yuan.strip()
    if not _YUAN.match(text):
        raise InvalidAmount(f"not a yuan amount: {yuan!r}")
    return int(Decimal(text) * 100)


def yuan_to_fen_rounded(yuan: str) -> int:
    """Parse a yuan string with sub-fen digits (bill fees: "0.00600"), rounding half up."""
    try:
        value = Decimal(yuan.strip())
    except InvalidOperation as exc:
        raise InvalidAmount(f"not a yuan amount: {yuan!r}") from exc
    if not value.is_finite():
        raise InvalidAmount(f"not a yuan amount: {yuan!r}")
    return int((value * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))
