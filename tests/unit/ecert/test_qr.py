"""QR rendering: alphanumeric mode at ECC M, version 10 fit, and never failing (qrcode #330)."""

from __future__ import annotations

import io
from datetime import datetime, timedelta
from typing import Any

import png  # pypng, which qrcode's PyPNGImage uses
import pytest
import qrcode
from hypothesis import given, settings
from hypothesis import strategies as st
from qrcode.util import MODE_ALPHA_NUM, QRData

from ecert.presentation import base45, cwt, qr

TEXTS = st.text(alphabet=base45.ALPHABET, min_size=150, max_size=400).map(lambda s: "SZ1:" + s)
# The glog(0) trigger: a run of "0" long enough to fill a whole Reed-Solomon data block.
ZERO_RUN = "SZ1:" + "0" * 300


def minimal(who: Any, now: datetime, **over: Any) -> str:
    args: dict[str, Any] = {
        "cert_type": "eid",
        "masked_name": "张*",
        "masked_id": "4403**********1234",
        "issued_at": now,
        "expires_at": now + timedelta(seconds=60),
        "status": cwt.StatusRef(123456, "https://sz.gov.cn/sl/1"),
    }
    args.update(over)
    return cwt.encode_presentation(who.private_key, who.kid_bytes, **args)


def decode_png(data: bytes) -> str | None:
    """Read the code back with a real decoder when one is installed (zxing-cpp)."""
    zxingcpp = pytest.importorskip("zxingcpp")
    image = pytest.importorskip("PIL.Image")
    results = zxingcpp.read_barcodes(image.open(io.BytesIO(data)))
    return results[0].text if results else None


def test_upstream_qrcode_8_2_still_fails_on_a_zero_block() -> None:
    # If this starts failing, qrcode has shipped the fix and qr._SafeQRCode can go.
    code = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M)
    code.add_data(QRData(ZERO_RUN.encode(), mode=MODE_ALPHA_NUM))
    with pytest.raises(ValueError, match="glog"):
        code.make()


def test_zero_block_renders_and_reads_back() -> None:
    rendered = qr.render_png(ZERO_RUN)
    assert rendered.version == qr.qr_version(ZERO_RUN)
    assert decode_png(rendered.png) == ZERO_RUN


def test_fixed_codewords_equal_upstream_where_upstream_works() -> None:
    from qrcode import util

    text = "SZ1:" + base45.encode(bytes(range(256)))
    data = [QRData(text.encode(), mode=MODE_ALPHA_NUM)]
    for version in (14, 20, 40):
        assert qr._create_data(version, 0, data) == util.create_data(version, 0, data)


@settings(max_examples=300, deadline=None)
@given(text=TEXTS)
def test_rendering_never_fails(text: str) -> None:
    png_out = qr.render_png(text, box_size=1, border=0)
    assert png_out.png.startswith(b"\x89PNG")
    assert 1 <= png_out.version <= 12


@settings(max_examples=40, deadline=None)
@given(zero_at=st.integers(min_value=0, max_value=200), length=st.integers(100, 250))
def test_rendering_never_fails_with_zero_runs(zero_at: int, length: int) -> None:
    text = "SZ1:" + "A" * zero_at + "0" * length + "Z"
    assert qr.render_png(text, box_size=1, border=0).version >= 1


def test_alphanumeric_mode_is_used(issuer: Any, now: datetime) -> None:
    text = minimal(issuer, now)
    code = qr._build(text, None, 1, 0)
    assert [d.mode for d in code.data_list] == [MODE_ALPHA_NUM]
    assert code.data_cache is not None
    assert code.data_cache[0] >> 4 == 0b0010  # the first 4 bits of the stream: alphanumeric


def test_minimal_presentation_fits_version_10_at_ecc_m(issuer: Any, now: datetime) -> None:
    text = minimal(issuer, now)
    assert len(text) == 309 and len(base45.decode(text[4:])) == 203
    assert qr.qr_version(text) == 10
    rendered = qr.render_png(text)
    assert rendered.version == 10
    assert decode_png(rendered.png) == text


def test_version_10_budget_is_tight(issuer: Any, now: datetime) -> None:
    # One more 3-byte character (a 3-character masked name) needs version 11.
    assert qr.qr_version(minimal(issuer, now, masked_name="张*明")) == 11


def test_full_presentation_measured(issuer: Any, now: datetime) -> None:
    text = minimal(
        issuer,
        now,
        masked_name="张*明",
        masked_id="440305********1234",
        issuer="https://ecert.sz.gov.cn",
        subject="crt_01JD3X8Q6T2M8V5N4K7P9R0S1W",
        status=cwt.StatusRef(123456, "https://ecert.sz.gov.cn/statuslists/eid/1"),
        extra={
            "sex": "男",
            "dob": "1990-**-**",
            "nat": "汉",
            "org": "深圳市公安局",
            "no": "E4403********7788",
            "valid": "2020-01-01/2030-01-01",
        },
    )
    assert len(base45.decode(text[4:])) == 389 and len(text) == 588
    assert qr.qr_version(text) == 15


def test_png_is_pure_python_pypng_and_readable(issuer: Any, now: datetime) -> None:
    rendered = qr.render_png(minimal(issuer, now), box_size=4, border=4)
    width, height, _rows, info = png.Reader(bytes=rendered.png).read()
    modules = 17 + 4 * rendered.version
    assert width == height == (modules + 8) * 4
    assert info["greyscale"] and info["bitdepth"] == 1


def test_svg_output(issuer: Any, now: datetime) -> None:
    text = minimal(issuer, now)
    svg = qr.render_svg(text)
    assert svg.version == 10
    assert svg.svg.startswith("<svg") and "<path" in svg.svg and svg.svg.endswith("</svg>")


def test_text_outside_the_alphanumeric_set_is_refused() -> None:
    with pytest.raises(ValueError):
        qr.render_png("SZ1:lower case")
