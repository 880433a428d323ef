"""Safe decoding of untrusted face images (JPEG and PNG only).

Probe images come from citizens' phones, so they are treated as hostile: a
byte cap before decoding, an allow-list of formats (Pillow would otherwise
try every decoder it has), a pixel cap read from the header before the
pixels are decoded (decompression bombs), EXIF orientation applied (phones
store portrait photos rotated and flag it in EXIF, and dlib's frontal face
detector does not find sideways faces), and a downscale so that detection
time is bounded.

Needs Pillow and numpy (the optional ``face`` extra); imported lazily so that
``identity.verification`` imports without them.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

from identity.verification.errors import InvalidImage

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

MAX_IMAGE_BYTES = 5 * 1024 * 1024
MAX_IMAGE_PIXELS = 25_000_000  # a 50-megapixel phone photo must be resized by the app first
# Faces in selfies and ID photos are large: 1024 px keeps them well above the
# detector's ~40 px minimum (with one upsampling) and bounds the work per image.
DETECTION_MAX_SIDE = 1024
ALLOWED_FORMATS = ("JPEG", "PNG")


def check_image_size(data: bytes, *, image: str, max_bytes: int = MAX_IMAGE_BYTES) -> None:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise InvalidImage("The image must be bytes.", image=image)
    if len(data) == 0:
        raise InvalidImage("The image is empty.", image=image)
    if len(data) > max_bytes:
        raise InvalidImage(f"The image is larger than {max_bytes} bytes.", image=image)


def decode_rgb(
    data: bytes, *, image: str, max_bytes: int = MAX_IMAGE_BYTES
) -> npt.NDArray[np.uint8]:
    """Decode JPEG/PNG bytes into a C-contiguous HxWx3 uint8 RGB array.

    ``image`` ("probe" or "reference") is put in the error's ``extra`` so the
    caller can tell the citizen which picture is at fault.
    """
    import numpy as np
    from PIL import Image, ImageOps

    check_image_size(data, image=image, max_bytes=max_bytes)
    try:
        with Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS) as opened:
            width, height = opened.size
            if width * height > MAX_IMAGE_PIXELS:
                raise InvalidImage(
                    f"The image has more than {MAX_IMAGE_PIXELS} pixels.", image=image
                )
            oriented = ImageOps.exif_transpose(opened)
            if oriented.mode.startswith("I;16"):
                # 16-bit greyscale PNG: convert("RGB") would clip it to white, so scale it.
                grey = (np.asarray(oriented, dtype=np.uint16) >> 8).astype(np.uint8)
                oriented = Image.fromarray(grey)  # 2-D uint8 is mode "L"
            rgb = oriented.convert("RGB")
    except InvalidImage:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InvalidImage(
            f"The image has more than {MAX_IMAGE_PIXELS} pixels.", image=image
        ) from None
    except Exception:  # noqa: BLE001 - any decoder failure on untrusted bytes means "not an image"
        raise InvalidImage("The image is not a decodable JPEG or PNG.", image=image) from None
    if max(rgb.size) > DETECTION_MAX_SIDE:
        rgb.thumbnail((DETECTION_MAX_SIDE, DETECTION_MAX_SIDE), Image.Resampling.LANCZOS)
    return np.ascontiguousarray(np.asarray(rgb, dtype=np.uint8))
