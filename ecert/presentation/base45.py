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


def decode(text: str) -> bytes:
    if len(text) % 3 == 1:
        raise Base45Error("Base45 text length must not be 1 modulo 3")
    try:
        values = [_VALUE[c] for c in text]
    except KeyError:
        raise Base45Error("character outside the Base45 alphabet") from None
    out = bytearray()
    full = len(values) - len(values) % 3
    for i in range(0, full, 3):
        n = values[i] + values[i + 1] * 45 + values[i + 2] * 45 * 45
        if n > 0xFFFF:
            raise Base45Error("Base45 triplet overflows two bytes")
        out += n.to_bytes(2, "big")
    if full < len(values):
        n = values[full] + values[full + 1] * 45
        if n > 0xFF:
            raise Base45Error("Base45 final pair overflows one byte")
        out.append(n)
    return bytes(out)
