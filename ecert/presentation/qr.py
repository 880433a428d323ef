"""Render a presentation text as a QR code (ISO/IEC 18004) with ``qrcode`` 8.2.

The whole text goes in ONE alphanumeric-mode segment at error correction M:
the Base45 alphabet plus ``SZ1:`` is exactly QR's 45-character alphanumeric
set, 5.5 bits a character. (``add_data`` would split long digit runs into
numeric segments; one segment keeps the version predictable.)

Speed (the counter page and wallet render a code per minute per citizen):
``matrix`` builds the symbol from qrcode's function-pattern layout (cached per
version) with a table-driven Reed-Solomon encoder, derives all eight masks by
XOR on rows held as integers and scores them with the ISO/IEC 18004 penalty
rules computed with bit operations; PNG (1-bit greyscale, stdlib ``zlib``) and
SVG (one path) are written directly. About 5 ms per PNG instead of ~40 ms
through qrcode's own ``make`` and pypng.

Work-around for python-qrcode issue #330 (``ValueError: glog(0)``, fixed
upstream in commit 6790456, not in 8.2): ``util.create_bytes`` builds the
Reed-Solomon dividend with ``base.Polynomial``, which strips leading zero
coefficients; a data block whose bytes are all zero leaves the single
coefficient 0 and ``Polynomial.__mod__`` takes ``glog(0)``. In our text a
block is all zero when a long run of ``0`` characters fills it (Base45 of a
run of zero bytes). Mask choice cannot help, since error correction is
computed before masking. ``_SafeQRCode`` therefore fills qrcode's
``data_cache`` from ``_create_data``, a copy of ``util.create_data`` whose
block step gives the all-zero block its correct parity: all zeros, because
the code is linear. Other blocks go through qrcode's own arithmetic.
Remove this when a qrcode release with the fix is pinned.
"""

from __future__ import annotations

import functools
import re
import struct
import zlib
from dataclasses import dataclass
from typing import Any, NamedTuple

# qrcode 8.2 ships no type information.
import qrcode  # type: ignore[import-untyped]
from qrcode import base, exceptions, util
from qrcode.constants import ERROR_CORRECT_M  # type: ignore[import-untyped]


class QrPng(NamedTuple):
    png: bytes
    version: int


class QrSvg(NamedTuple):
    svg: str
    version: int


_EXP = [0] * 512
_LOG = [0] * 256
_x = 1
for _i in range(255):
    _EXP[_i] = _x
    _LOG[_x] = _i
    _x <<= 1
    if _x & 0x100:
        _x ^= 0x11D
for _i in range(255, 512):
    _EXP[_i] = _EXP[_i - 255]


@functools.lru_cache(maxsize=64)
def _generator_logs(ec_count: int) -> tuple[int, ...]:
    """Logs of the generator polynomial prod(x - a^i), i < ec_count, without its leading 1."""
    gen = [1]
    for i in range(ec_count):
        nxt = [0] * (len(gen) + 1)
        for j, coef in enumerate(gen):
            nxt[j] ^= coef
            if coef:
                nxt[j + 1] ^= _EXP[_LOG[coef] + i]
        gen = nxt
    return tuple(_LOG[c] if c else -1 for c in gen[1:])


def _rs_parity(data: list[int], ec_count: int) -> list[int]:
    logs = _generator_logs(ec_count)
    rem = [0] * ec_count
    for byte in data:
        factor = byte ^ rem[0]
        rem = rem[1:] + [0]
        if factor:
            lf = _LOG[factor]
            for i, lg in enumerate(logs):
                if lg >= 0:
                    rem[i] ^= _EXP[lf + lg]
    return rem


def _create_bytes(buffer: util.BitBuffer, rs_blocks: list[base.RSBlock]) -> list[int]:
    offset = 0
    dcdata: list[list[int]] = []
    ecdata: list[list[int]] = []
    for block in rs_blocks:
        dc_count, ec_count = block.data_count, block.total_count - block.data_count
        current_dc = [0xFF & buffer.buffer[i + offset] for i in range(dc_count)]
        offset += dc_count
        # Table-driven Reed-Solomon (LFSR division). Unlike upstream's Polynomial it has no
        # trouble with a block of zeros (parity zero) and it is several times faster.
        current_ec = _rs_parity(current_dc, ec_count)
        dcdata.append(current_dc)
        ecdata.append(current_ec)
    # Interleave codewords exactly as upstream does.
    data: list[int] = []
    for blocks in (dcdata, ecdata):
        for i in range(max(len(b) for b in blocks)):
            data.extend(b[i] for b in blocks if i < len(b))
    return data


_ALNUM = {ch: i for i, ch in enumerate(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:")}


def _codewords(payload: bytes, version: int) -> list[int]:
    """``_create_data`` for one alphanumeric segment, with the bits built as one integer."""
    count_bits = util.length_in_bits(util.MODE_ALPHA_NUM, version)
    acc, nbits = (util.MODE_ALPHA_NUM << count_bits) | len(payload), 4 + count_bits
    for i in range(0, len(payload) - 1, 2):
        acc = (acc << 11) | (_ALNUM[payload[i]] * 45 + _ALNUM[payload[i + 1]])
        nbits += 11
    if len(payload) % 2:
        acc = (acc << 6) | _ALNUM[payload[-1]]
        nbits += 6
    rs_blocks = base.rs_blocks(version, ERROR_CORRECT_M)
    limit = sum(block.data_count * 8 for block in rs_blocks)
    if nbits > limit:
        raise exceptions.DataOverflowError(f"{nbits} bits > {limit}")
    pad = min(limit - nbits, 4) + (-(nbits + min(limit - nbits, 4)) % 8)  # terminator, align
    acc, nbits = acc << pad, nbits + pad
    data = list(acc.to_bytes(nbits // 8, "big"))
    data.extend(util.PAD1 if i % 2 else util.PAD0 for i in range((limit - nbits) // 8))
    codewords: list[list[int]] = []
    parity: list[list[int]] = []
    offset = 0
    for block in rs_blocks:
        chunk = data[offset : offset + block.data_count]
        offset += block.data_count
        codewords.append(chunk)
        parity.append(_rs_parity(chunk, block.total_count - block.data_count))
    out: list[int] = []
    for blocks in (codewords, parity):
        for i in range(max(len(b) for b in blocks)):
            out.extend(b[i] for b in blocks if i < len(b))
    return out


def _create_data(version: int, error_correction: int, data_list: list[Any]) -> list[int]:
    """``qrcode.util.create_data`` of 8.2 with ``_create_bytes`` as the last step."""
    buffer = util.BitBuffer()
    for data in data_list:
        buffer.put(data.mode, 4)
        buffer.put(len(data), util.length_in_bits(data.mode, version))
        data.write(buffer)
    rs_blocks = base.rs_blocks(version, error_correction)
    bit_limit = sum(block.data_count * 8 for block in rs_blocks)
    if len(buffer) > bit_limit:
        raise exceptions.DataOverflowError(f"{len(buffer)} bits > {bit_limit}")
    for _ in range(min(bit_limit - len(buffer), 4)):  # terminator
        buffer.put_bit(False)
    for _ in range(-len(buffer) % 8):  # byte-align
        buffer.put_bit(False)
    for i in range((bit_limit - len(buffer)) // 8):  # alternating pad bytes
        buffer.put(util.PAD1 if i % 2 else util.PAD0, 8)
    return _create_bytes(buffer, rs_blocks)


class _SafeQRCode(qrcode.QRCode):  # type: ignore[misc]
    data_cache: list[int] | None

    def makeImpl(self, test: bool, mask_pattern: int) -> None:
        if self.data_cache is None:
            self.data_cache = _create_data(self.version, self.error_correction, self.data_list)
        super().makeImpl(test, mask_pattern)


def _build(text: str, image_factory: Any, box_size: int, border: int) -> _SafeQRCode:
    payload = text.encode("ascii")
    if not util.RE_ALPHA_NUM.match(payload):
        raise ValueError("text must use only the QR alphanumeric characters")
    code = _SafeQRCode(
        error_correction=ERROR_CORRECT_M,
        box_size=box_size,
        border=border,
        image_factory=image_factory,
    )
    code.add_data(util.QRData(payload, mode=util.MODE_ALPHA_NUM))
    code.make(fit=True)
    return code


def qr_version(text: str) -> int:
    """The smallest QR version (1-40) that holds ``text`` at ECC level M."""
    code = _SafeQRCode(error_correction=ERROR_CORRECT_M)
    code.add_data(util.QRData(text.encode("ascii"), mode=util.MODE_ALPHA_NUM))
    return int(code.best_fit())


def render_png(text: str, box_size: int = 8, border: int = 4) -> QrPng:
    """A 1-bit greyscale PNG (zlib from the standard library; no Pillow)."""
    rows, n, version = matrix(text)
    return QrPng(_png(rows, n, box_size, border), version)


def render_svg(text: str, box_size: int = 10, border: int = 4) -> QrSvg:
    rows, n, version = matrix(text)
    return QrSvg(_svg(rows, n, box_size, border), version)


# Fast matrix -----------------------------------------------------------------------------
# qrcode picks the mask by building the whole symbol eight times and scoring each
# with a pure-Python penalty walk (tens of ms). Here the symbol is built once with
# mask 0; the other seven follow by XOR-ing the data modules with the difference of
# the two mask patterns, on rows held as integers (bit n-1-c is column c), and are
# scored with ISO/IEC 18004 section 7.8.3's four penalty rules on those integers.
# The lowest score wins (ties: lowest mask), as the standard asks.


@dataclass(frozen=True)
class _Layout:
    fixed: tuple[int, ...]  # per row: dark function-pattern modules (finders, timing, version)
    order: tuple[tuple[int, int], ...]  # data cells in placement order: (row, column bit)
    pattern: tuple[tuple[int, ...], ...]  # per mask, per row: data cells the mask flips
    type_bits: tuple[tuple[int, ...], ...]  # per mask, per row: dark format modules


def _row_int(cells: list[Any]) -> int:
    value = 0
    for cell in cells:
        value = (value << 1) | (1 if cell else 0)
    return value


@functools.lru_cache(maxsize=40)
def _layout(version: int) -> _Layout:
    """Everything about a version's symbol that does not depend on the data (cached)."""
    n = version * 4 + 17
    code = _SafeQRCode(version=version, error_correction=ERROR_CORRECT_M)
    code.modules_count = n
    code.modules = [[None] * n for _ in range(n)]
    code.setup_position_probe_pattern(0, 0)
    code.setup_position_probe_pattern(n - 7, 0)
    code.setup_position_probe_pattern(0, n - 7)
    code.setup_position_adjust_pattern()
    code.setup_timing_pattern()
    if version >= 7:
        code.setup_type_number(False)
    function = [row[:] for row in code.modules]
    code.setup_type_info(True, 0)  # reserve the format cells; the data avoids them
    # qrcode's map_data walk: column pairs right to left, zigzag up and down.
    order: list[tuple[int, int]] = []
    row, inc = n - 1, -1
    for col in range(n - 1, 0, -2):
        if col <= 6:
            col -= 1
        while True:
            for c in (col, col - 1):
                if code.modules[row][c] is None:
                    order.append((row, 1 << (n - 1 - c)))
            row += inc
            if row < 0 or n <= row:
                row -= inc
                inc = -inc
                break
    data = [0] * n
    for r, bit in order:
        data[r] |= bit
    pattern = tuple(
        tuple(_row_int([util.mask_func(k)(r, c) for c in range(n)]) & data[r] for r in range(n))
        for k in range(8)
    )
    type_bits = []
    for k in range(8):
        code.modules = [[None] * n for _ in range(n)]
        code.setup_type_info(False, k)
        type_bits.append(tuple(_row_int([cell is True for cell in row]) for row in code.modules))
    return _Layout(
        fixed=tuple(_row_int([cell is True for cell in row]) for row in function),
        order=tuple(order),
        pattern=pattern,
        type_bits=tuple(type_bits),
    )


def _runs(same: list[int], full: int) -> int:
    """N1 from "equal to the next module" bitmaps: a run of L >= 5 costs L - 2."""
    score = 0
    previous = 0
    for r in range(len(same) - 3):
        w4 = same[r] & same[r + 1] & same[r + 2] & same[r + 3] & full
        score += w4.bit_count() + 2 * (w4 & ~previous).bit_count()
        previous = w4
    return score


def _penalty(rows: list[int], n: int) -> int:
    """ISO/IEC 18004 mask penalty N1-N4, on rows as integers (bit n-1-c is column c)."""
    full = (1 << n) - 1
    inverse = [~r & full for r in rows]
    # N1 across: bit i of same_h[r] says cells i and i+1 of row r match; scan bit columns.
    same_h = [~(r ^ (r >> 1)) & (full >> 1) for r in rows]
    score = 0
    for s in same_h:
        w4 = s & (s >> 1) & (s >> 2) & (s >> 3)
        score += w4.bit_count() + 2 * (w4 & ~(w4 << 1)).bit_count()
    # N1 down: same_v[r] says row r and r+1 match, for every column at once.
    same_v = [~(a ^ b) & full for a, b in zip(rows, rows[1:], strict=False)]
    score += _runs(same_v, full)
    # N2: 2x2 blocks of one colour.
    for r, v in enumerate(same_v):
        score += 3 * (v & (v >> 1) & same_h[r]).bit_count()
    # N3: the 1:1:3:1:1 core 1011101 with four light modules before or after it.
    core_bits = (1, 0, 1, 1, 1, 0, 1)
    for r in range(n):
        core, light = full, full
        for j, dark in enumerate(core_bits):
            core &= (rows[r] if dark else inverse[r]) >> j
        for j in range(4):
            light &= inverse[r] >> j
        both = (core & (light >> 7)).bit_count() + (light & (core >> 4)).bit_count()
        score += 40 * both
    cores = []
    for r in range(n - 6):
        m = full
        for j, dark in enumerate(core_bits):
            m &= rows[r + j] if dark else inverse[r + j]
        cores.append(m)
    lights = [inverse[r] & inverse[r + 1] & inverse[r + 2] & inverse[r + 3] for r in range(n - 3)]
    for r in range(n - 10):
        score += 40 * (
            (cores[r] & lights[r + 7]).bit_count() + (lights[r] & cores[r + 4]).bit_count()
        )
    # N4: 10 per full 5 % that the dark share is away from 50 %.
    dark = sum(r.bit_count() for r in rows)
    return score + 10 * (abs(dark * 20 - n * n * 10) // (n * n))


def matrix(text: str) -> tuple[list[int], int, int]:
    """The symbol as row integers, its size and its version (ECC M, alphanumeric)."""
    payload = text.encode("ascii")
    if not util.RE_ALPHA_NUM.match(payload):
        raise ValueError("text must use only the QR alphanumeric characters")
    version = _fit(len(payload))
    codewords = _codewords(payload, version)
    layout = _layout(version)
    n = version * 4 + 17
    data = [0] * n
    bits = int.from_bytes(bytes(codewords), "big")
    total = 8 * len(codewords)
    for i, (r, bit) in enumerate(layout.order[:total]):
        if (bits >> (total - 1 - i)) & 1:
            data[r] |= bit
    best: tuple[int, list[int]] | None = None
    for k in range(8):
        pattern, fmt = layout.pattern[k], layout.type_bits[k]
        rows = [layout.fixed[r] | (data[r] ^ pattern[r]) | fmt[r] for r in range(n)]
        score = _penalty(rows, n)
        if best is None or score < best[0]:
            best = (score, rows)
    assert best is not None
    return best[1], n, version


@functools.lru_cache(maxsize=1)
def _capacities() -> tuple[int, ...]:
    """Data bits per version (1-40) at ECC M."""
    return tuple(
        sum(b.data_count * 8 for b in base.rs_blocks(v, ERROR_CORRECT_M)) for v in range(1, 41)
    )


def _fit(length: int) -> int:
    """The smallest version holding one alphanumeric segment of ``length`` characters."""
    payload_bits = 11 * (length // 2) + 6 * (length % 2)
    for version, capacity in enumerate(_capacities(), 1):
        count_bits = util.length_in_bits(util.MODE_ALPHA_NUM, version)
        if length < (1 << count_bits) and 4 + count_bits + payload_bits <= capacity:
            return version
    raise exceptions.DataOverflowError(f"{length} characters do not fit a QR code")


def _png(rows: list[int], n: int, box: int, border: int) -> bytes:
    size = (n + 2 * border) * box
    quiet = b"\x00" + _pack("1" * size)
    lines = [quiet] * (border * box)
    for r in rows:
        bits = "".join("0" * box if ch == "1" else "1" * box for ch in format(r, f"0{n}b"))
        line = b"\x00" + _pack("1" * (border * box) + bits + "1" * (border * box))
        lines.extend([line] * box)
    lines.extend([quiet] * (border * box))

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    header = struct.pack(">IIBBBBB", size, size, 1, 0, 0, 0, 0)  # 1-bit greyscale
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"".join(lines), 6))
        + chunk(b"IEND", b"")
    )


def _pack(bits: str) -> bytes:
    pad = -len(bits) % 8
    return int(bits + "1" * pad, 2).to_bytes((len(bits) + pad) // 8, "big")


def _svg(rows: list[int], n: int, box: int, border: int) -> str:
    size = (n + 2 * border) * box
    path = []
    for r, value in enumerate(rows):
        line = format(value, f"0{n}b")
        for m in re.finditer("1+", line):
            x, y, w = (m.start() + border) * box, (r + border) * box, (m.end() - m.start()) * box
            path.append(f"M{x} {y}h{w}v{box}h-{w}z")
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{size}" height="{size}" '
        f'viewBox="0 0 {size} {size}" shape-rendering="crispEdges">'
        f'<rect width="{size}" height="{size}" fill="#fff"/>'
        f'<path fill="#000" d="{"".join(path)}"/></svg>'
    )
