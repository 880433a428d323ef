"""Local face comparison (dlib) on real photographs shipped in installed packages.

Eileen Collins: scikit-image's ``astronaut()``; Grace Hopper: matplotlib's
sample ``grace_hopper.jpg``. The reference is the ID-style crop the registry
simulator holds; probes are other framings of the same photograph.
"""

from __future__ import annotations

import asyncio
import io
import multiprocessing
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor

import pytest

pytest.importorskip("dlib")
pytest.importorskip("skimage")
pytest.importorskip("matplotlib")

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402
from skimage import data  # noqa: E402

from identity.verification.errors import FaceNotFound, InvalidImage, MultipleFaces  # noqa: E402
from identity.verification.face import LocalFaceVerifier  # noqa: E402
from identity.verification.images import MAX_IMAGE_BYTES  # noqa: E402
from server.sims.registry import demo_photos  # noqa: E402


def encode(image: Image.Image, fmt: str = "JPEG", **params: object) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **params)
    return out.getvalue()


@pytest.fixture(scope="module")
def photos() -> dict[str, bytes]:
    return demo_photos()


@pytest.fixture(scope="module")
def verifier() -> Iterator[LocalFaceVerifier]:
    face = LocalFaceVerifier()
    yield face
    face.close()


@pytest.fixture(scope="module")
def astronaut() -> Image.Image:
    return Image.fromarray(data.astronaut())


def selfie(astronaut: Image.Image) -> bytes:
    """Another framing of the astronaut: cropped, scaled down, tilted, recompressed."""
    framed = astronaut.crop((40, 0, 460, 420)).resize((300, 300), Image.Resampling.BILINEAR)
    return encode(
        framed.rotate(8, resample=Image.Resampling.BICUBIC, fillcolor=(200, 200, 200)), quality=70
    )


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_same_person_in_another_framing_matches(
    verifier: LocalFaceVerifier, photos: dict[str, bytes], astronaut: Image.Image
) -> None:
    match = await verifier.compare(selfie(astronaut), photos["astronaut"])
    assert match.matched
    assert match.score < match.threshold == 0.6

    whole_png = encode(astronaut, "PNG")  # full photo incl. a mission badge, lossless PNG
    assert (await verifier.compare(whole_png, photos["astronaut"])).matched


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_mirrored_selfie_matches(
    verifier: LocalFaceVerifier, photos: dict[str, bytes], astronaut: Image.Image
) -> None:
    # Front cameras mirror the picture.
    mirrored = encode(astronaut.transpose(Image.Transpose.FLIP_LEFT_RIGHT), quality=80)
    assert (await verifier.compare(mirrored, photos["astronaut"])).matched


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_different_people_do_not_match(
    verifier: LocalFaceVerifier, photos: dict[str, bytes], astronaut: Image.Image
) -> None:
    match = await verifier.compare(selfie(astronaut), photos["grace_hopper"])
    assert not match.matched
    assert match.score >= 0.6
    swapped = await verifier.compare(photos["grace_hopper"], photos["astronaut"])
    assert not swapped.matched


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_phone_photo_stored_sideways_with_exif_orientation_matches(
    verifier: LocalFaceVerifier, photos: dict[str, bytes], astronaut: Image.Image
) -> None:
    sideways = astronaut.rotate(90, expand=True)  # pixels as a phone sensor stores them
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
    assert (await verifier.compare(encode(sideways, exif=exif), photos["astronaut"])).matched
    with pytest.raises(FaceNotFound):  # without the tag the frontal detector sees no face
        await verifier.compare(encode(sideways), photos["astronaut"])


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_images_without_a_face_say_which_image(
    verifier: LocalFaceVerifier, photos: dict[str, bytes]
) -> None:
    coffee = encode(Image.fromarray(data.coffee()))
    with pytest.raises(FaceNotFound) as caught:
        await verifier.compare(coffee, photos["astronaut"])
    assert caught.value.code == "face-not-found"
    assert caught.value.extra == {"image": "probe"}

    flat = encode(Image.new("RGB", (400, 400), (128, 128, 128)), "PNG")
    with pytest.raises(FaceNotFound) as caught:
        await verifier.compare(photos["astronaut"], flat)
    assert caught.value.extra == {"image": "reference"}


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_two_faces_are_refused(verifier: LocalFaceVerifier, photos: dict[str, bytes]) -> None:
    both = Image.new("RGB", (716, 441))
    for offset, key in ((0, "astronaut"), (358, "grace_hopper")):
        with Image.open(io.BytesIO(photos[key])) as photo:
            both.paste(photo, (offset, 0))
    with pytest.raises(MultipleFaces) as caught:
        await verifier.compare(encode(both), photos["astronaut"])
    assert caught.value.code == "face-multiple"


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_unusable_images_are_invalid(
    verifier: LocalFaceVerifier, photos: dict[str, bytes], astronaut: Image.Image
) -> None:
    reference = photos["astronaut"]
    truncated = photos["grace_hopper"][: len(photos["grace_hopper"]) // 2]
    gif = encode(astronaut.convert("P"), "GIF")  # a real image, but not an allowed format
    # 6000x5000 flat PNG: a few kilobytes on the wire, 30 megapixels decoded.
    bomb = encode(Image.new("L", (6000, 5000)), "PNG", optimize=True)
    assert len(bomb) < MAX_IMAGE_BYTES
    oversized = b"\xff\xd8\xff" + bytes(MAX_IMAGE_BYTES)
    for probe in (b"garbage", b"", truncated, gif, bomb, oversized):
        with pytest.raises(InvalidImage) as caught:
            await verifier.compare(probe, reference)
        assert caught.value.code == "invalid-image"
        assert caught.value.extra == {"image": "probe"}


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_event_loop_keeps_serving_while_faces_are_compared(
    verifier: LocalFaceVerifier, photos: dict[str, bytes], astronaut: Image.Image
) -> None:
    ticks = 0

    async def other_requests() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.001)
            ticks += 1

    ticker = asyncio.create_task(other_requests())
    try:
        whole = encode(astronaut, "PNG")
        await verifier.compare(whole, photos["astronaut"])
    finally:
        ticker.cancel()
    assert ticks >= 5  # a compare run on the loop itself would allow none


@pytest.mark.asyncio
@pytest.mark.timeout(120)
async def test_process_pool_gives_the_same_answer(
    verifier: LocalFaceVerifier, photos: dict[str, bytes], astronaut: Image.Image
) -> None:
    probe = selfie(astronaut)
    in_thread = await verifier.compare(probe, photos["astronaut"])
    spawn = multiprocessing.get_context("spawn")  # fork of a threaded process is unsafe
    with ProcessPoolExecutor(max_workers=1, mp_context=spawn) as pool:
        in_process = LocalFaceVerifier(executor=pool)
        assert await in_process.compare(probe, photos["astronaut"]) == in_thread
        with pytest.raises(FaceNotFound):
            await in_process.compare(encode(Image.fromarray(data.coffee())), photos["astronaut"])


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_same_person_is_always_closer_than_another_person(
    verifier: LocalFaceVerifier, photos: dict[str, bytes], astronaut: Image.Image
) -> None:
    """Run with -s to see the distances."""
    mirrored = encode(astronaut.transpose(Image.Transpose.FLIP_LEFT_RIGHT), quality=80)
    same = {
        "selfie": (selfie(astronaut), photos["astronaut"]),
        "full PNG": (encode(astronaut, "PNG"), photos["astronaut"]),
        "mirrored": (mirrored, photos["astronaut"]),
    }
    different = {
        "selfie vs Hopper": (selfie(astronaut), photos["grace_hopper"]),
        "mirrored vs Hopper": (mirrored, photos["grace_hopper"]),
        "Hopper vs Collins ID": (photos["grace_hopper"], photos["astronaut"]),
    }
    distances = {}
    for label, (probe, reference) in (same | different).items():
        distances[label] = (await verifier.compare(probe, reference)).score
        print(f"{label}: distance {distances[label]:.4f}")
    assert max(distances[k] for k in same) < min(distances[k] for k in different)


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_every_usual_colour_mode_is_understood(
    verifier: LocalFaceVerifier, photos: dict[str, bytes], astronaut: Image.Image
) -> None:
    grey16 = Image.fromarray(np.asarray(astronaut.convert("L")).astype(np.uint16) * 257)
    assert grey16.mode == "I;16"  # a 16-bit PNG: naive convert("RGB") turns it white
    probes = {
        "grey JPEG": encode(astronaut.convert("L")),
        "RGBA PNG": encode(astronaut.convert("RGBA"), "PNG"),
        "CMYK JPEG": encode(astronaut.convert("CMYK")),
        "palette PNG": encode(astronaut.convert("P"), "PNG"),
        "16-bit grey PNG": encode(grey16, "PNG"),
    }
    for label, probe in probes.items():
        assert (await verifier.compare(probe, photos["astronaut"])).matched, label
