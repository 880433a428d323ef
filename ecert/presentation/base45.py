"""Base45 data encoding, RFC 9285.

Base45 maps bytes onto the 45 characters of the QR alphanumeric mode, so a
QR code holds binary data at about 97% of the byte-mode density. Decoding is
strict: characters outside the alphabet, a length of 1 modulo 3 and chunks
whose value overflows (a triplet above 65535, a final pair above 255) are all
errors, so two different texts never decode to the same bytes.
"""

from __future__ import annotations

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"
_VALUE = {c: i for i, c in enumerate(ALPHABET)}


class Base45Error(ValueError):
    """The text is not canonical Base45."""


def encode(data: bytes) -> str:
    out: list[str] = []
    for i in range(0, len(data) - 1, 2):
        n = data[i] * 256 + data[i + 1]
        e, n = divmod(n, 45 * 45)
        d, c = divmod(n, 45)
        out += (ALPHABET[c], ALPHABET[d], ALPHABET[e])
    if len(data) % 2:
        d, c = divmod(data[-1], 45)
        out += (ALPHABET[c], ALPHABET[d])
    return "".join(out)


# bytes.translate table: an alphabet character -> its value, anything else -> 255.
_TABLE = bytes(_VALUE.get(chr(b), 255) for b in range(256))


def decode(text: str) -> bytes:
    if len(text) % 3 == 1:
        raise Base45Error("Base45 text length must not be 1 modulo 3")
    if not text.isascii():
        raise Base45Error("character outside the Base45 alphabet")
    values = text.encode("ascii").translate(_TABLE)
    if 255 in values:
        raise Base45Error("character outside the Base45 alphabet")
    full = len(values) - len(values) % 3
    out = _triplets(values[:full])
    if full < len(values):
        n = values[full] + values[full + 1] * 45
        if n > 0xFF:
            raise Base45Error("Base45 final pair overflows one byte")
        out += bytes((n,))
    return out


def _triplets(values: bytes) -> bytes:
    """All the triplets c + 45 d + 2025 e at once, with no Python loop per triplet: each
    of c, d, e goes into the low byte of its own 4-byte big-endian slot of one big
    integer; the sums stay below 2**17, so no slot carries into the next."""
    n = len(values) // 3
    if n == 0:
        return b""
    slots = []
    for k in range(3):
        buf = bytearray(4 * n)
        buf[3::4] = values[k::3]
        slots.append(int.from_bytes(buf, "big"))
    words = (slots[0] + 45 * slots[1] + 2025 * slots[2]).to_bytes(4 * n, "big")
    if words[1::4].count(0) != n:  # a triplet above 0xFFFF (at most 91124: byte 1 only)
        raise Base45Error("Base45 triplet overflows two bytes")
    out = bytearray(2 * n)
    out[0::2] = words[2::4]
    out[1::2] = words[3::4]
    return bytes(out)
