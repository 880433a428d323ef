"""Render a presentation text as a QR code (ISO/IEC 18004) with ``qrcode`` 8.2.

The whole text goes in ONE alphanumeric-mode segment at error correction M:
the Base45 alphabet plus ``SZ1:`` is exactly QR's 45-character alphanumeric
set, 5.5 bits a character. (``add_data`` would split long digit runs into
numeric segments; one segment keeps the version predictable.) PNG output uses
``qrcode.image.pure.PyPNGImage`` (pure-Python ``pypng``, no Pillow); SVG
output uses ``SvgPathImage`` (stdlib ``xml.etree``).

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

import io
from typing import Any, NamedTuple

# qrcode 8.2 ships no type information.
import qrcode  # type: ignore[import-untyped]
import qrcode.image.pure  # type: ignore[import-untyped]
import qrcode.image.svg  # type: ignore[import-untyped]
from qrcode import LUT, base, exceptions, util
from qrcode.constants import ERROR_CORRECT_M  # type: ignore[import-untyped]


class QrPng(NamedTuple):
    png: bytes
    version: int


class QrSvg(NamedTuple):
    svg: str
    version: int


def _create_bytes(buffer: util.BitBuffer, rs_blocks: list[base.RSBlock]) -> list[int]:
    offset = 0
    dcdata: list[list[int]] = []
    ecdata: list[list[int]] = []
    for block in rs_blocks:
        dc_count, ec_count = block.data_count, block.total_count - block.data_count
        current_dc = [0xFF & buffer.buffer[i + offset] for i in range(dc_count)]
        offset += dc_count
        if not any(current_dc):
            # The fix: a zero message has zero parity (and upstream dies in glog(0)).
            current_ec = [0] * ec_count
        else:
            if ec_count in LUT.rsPoly_LUT:
                rs_poly = base.Polynomial(LUT.rsPoly_LUT[ec_count], 0)
            else:
                rs_poly = base.Polynomial([1], 0)
                for i in range(ec_count):
                    rs_poly = rs_poly * base.Polynomial([1, base.gexp(i)], 0)
            mod_poly = base.Polynomial(current_dc, len(rs_poly) - 1) % rs_poly
            mod_offset = len(mod_poly) - ec_count
            current_ec = [
                mod_poly[i + mod_offset] if i + mod_offset >= 0 else 0 for i in range(ec_count)
            ]
        dcdata.append(current_dc)
        ecdata.append(current_ec)
    # Interleave codewords exactly as upstream does.
    data: list[int] = []
    for blocks in (dcdata, ecdata):
        for i in range(max(len(b) for b in blocks)):
            data.extend(b[i] for b in blocks if i < len(b))
    return data


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
    code = _build(text, qrcode.image.pure.PyPNGImage, box_size, border)
    out = io.BytesIO()
    code.make_image().save(out)
    return QrPng(out.getvalue(), int(code.version))


def render_svg(text: str, box_size: int = 10, border: int = 4) -> QrSvg:
    code = _build(text, qrcode.image.svg.SvgPathImage, box_size, border)
    return QrSvg(code.make_image().to_string(encoding="unicode"), int(code.version))
