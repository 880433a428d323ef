"""Simulator of the national population registry (and of a face comparison provider).

A real process speaking the JSON wire format documented in
``identity/verification/registry.py`` (``/v1/persons/verify``,
``/v1/persons/photo``) and in ``identity/verification/face.py``
(``/v1/face/compare``), so that real-name (L2) and face (L3) verification are
exercised over HTTP exactly as against the real services.

It holds a fixed list of made-up demo persons (valid GB 11643 numbers, E.164
phone numbers). Two of them have ID photos that are real faces shipped inside
installed packages: Eileen Collins (``skimage.data.astronaut()``, from
scikit-image) and Grace Hopper (matplotlib's sample ``grace_hopper.jpg``),
cropped to the 358x441 head-and-shoulders framing of a Chinese ID photo.
Without scikit-image / matplotlib those persons simply have no photo.

Run: ``python -m server.sims.registry --port 8701 --api-key demo-registry-key``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import hmac
import io
import json
import logging
import unicodedata
from dataclasses import dataclass, field
from typing import Any

import tornado.web

from identity.errors import DomainError
from identity.verification.face import FaceVerifier, LocalFaceVerifier
from identity.verification.registry import API_KEY_HEADER, RegistryResult
from server import loops

__all__ = ["DemoPerson", "RegistrySimConfig", "demo_photos", "make_app", "persons", "serve"]

log = logging.getLogger(__name__)

DEFAULT_API_KEY = "demo-registry-key"  # noqa: S105 - a simulator's published demo key
# Two 5 MiB images in base64 plus JSON framing.
MAX_BODY_BYTES = 16 * 1024 * 1024
ID_PHOTO_SIZE = (358, 441)  # pixels of a second-generation ID card photo


@dataclass(frozen=True, slots=True)
class DemoPerson:
    name: str
    id_number: str
    phone: str  # E.164
    photo: str | None = None  # "astronaut" or "grace_hopper"


DEMO_PERSONS: tuple[DemoPerson, ...] = (
    DemoPerson("林嘉怡", "440305198608126485", "+8613800138001", photo="astronaut"),
    DemoPerson("何佩玲", "440304197212098026", "+8613800138002", photo="grace_hopper"),
    DemoPerson("张三丰", "440303199001018578", "+8613800138003"),
    DemoPerson("王建国", "44030619651001049X", "+8613800138004"),
    DemoPerson("陈晓梅", "440307199503088002", "+8613800138005"),
    DemoPerson("刘志强", "440300198006150275", "+8613800138006"),
    DemoPerson("黄丽娟", "110105200111305528", "+8613800138007"),
    DemoPerson("周文博", "310115197804239178", "+8613800138008"),
)


def persons() -> list[DemoPerson]:
    """The demo persons (name, id_number, phone, photo source) for seeding demo data."""
    return list(DEMO_PERSONS)


def demo_photos() -> dict[str, bytes]:
    """ID photos (JPEG) by photo source name; empty without Pillow/scikit-image/matplotlib."""
    try:
        import numpy as np
        from matplotlib import cbook
        from PIL import Image
        from skimage import data
    except ImportError:
        log.warning("registry simulator: no demo photos (install the 'face' extra)")
        return {}

    def id_photo(image: Image.Image, box: tuple[int, int, int, int]) -> bytes:
        out = io.BytesIO()
        cropped = image.convert("RGB").crop(box).resize(ID_PHOTO_SIZE, Image.Resampling.LANCZOS)
        cropped.save(out, format="JPEG", quality=90)
        return out.getvalue()

    # Crop boxes centre the face found by dlib (astronaut face at x 175-265, y 76-166).
    astronaut = Image.fromarray(np.asarray(data.astronaut()))
    # asfileobj=False: the file object variant is left open (ResourceWarning).
    with Image.open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)) as hopper:
        grace = id_photo(hopper, (73, 0, 473, 492))
    return {"astronaut": id_photo(astronaut, (120, 10, 320, 256)), "grace_hopper": grace}


@dataclass(frozen=True, slots=True)
class RegistrySimConfig:
    api_key: str = DEFAULT_API_KEY
    persons: tuple[DemoPerson, ...] = DEMO_PERSONS
    photos: dict[str, bytes] = field(default_factory=dict)  # photo source -> JPEG
    face_verifier: FaceVerifier | None = None


class _Handler(tornado.web.RequestHandler):
    def initialize(self, config: RegistrySimConfig) -> None:
        self.config = config

    def prepare(self) -> None:
        given = self.request.headers.get(API_KEY_HEADER, "").encode()
        if not hmac.compare_digest(given, self.config.api_key.encode()):
            self._reply(401, {"error": "unauthorized"})

    def _reply(self, status: int, body: dict[str, Any]) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(json.dumps(body, ensure_ascii=False))

    def _json_fields(self, *names: str) -> dict[str, str] | None:
        """The named string fields of the JSON body, or None after replying 400."""
        try:
            body = json.loads(self.request.body)
        except (UnicodeDecodeError, json.JSONDecodeError):
            body = None
        if not isinstance(body, dict) or not all(isinstance(body.get(n), str) for n in names):
            self._reply(400, {"error": "bad-request", "detail": f"expected {', '.join(names)}"})
            return None
        return {n: body[n] for n in names}

    def _person(self, id_number: str) -> DemoPerson | None:
        wanted = id_number.strip().upper()
        return next((p for p in self.config.persons if p.id_number == wanted), None)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        self.finish(json.dumps({"error": "internal-error"}))


class VerifyHandler(_Handler):
    def post(self) -> None:
        fields = self._json_fields("name", "id_number")
        if fields is None:
            return
        person = self._person(fields["id_number"])
        if person is None:
            result = RegistryResult.NOT_FOUND
        elif _same_name(person.name, fields["name"]):
            result = RegistryResult.MATCH
        else:
            result = RegistryResult.NAME_MISMATCH
        self._reply(200, {"result": result.value})


class PhotoHandler(_Handler):
    def post(self) -> None:
        fields = self._json_fields("id_number")
        if fields is None:
            return
        person = self._person(fields["id_number"])
        photo = self.config.photos.get(person.photo) if person and person.photo else None
        if photo is None:
            self._reply(404, {"error": "not-found"})
            return
        encoded = base64.b64encode(photo).decode("ascii")
        self._reply(200, {"media_type": "image/jpeg", "photo": encoded})


class FaceCompareHandler(_Handler):
    async def post(self) -> None:
        verifier = self.config.face_verifier
        if verifier is None:
            self._reply(501, {"error": "not-implemented", "detail": "face extra not installed"})
            return
        fields = self._json_fields("probe_image", "reference_image")
        if fields is None:
            return
        try:
            probe = base64.b64decode(fields["probe_image"], validate=True)
            reference = base64.b64decode(fields["reference_image"], validate=True)
        except (ValueError, binascii.Error):
            self._reply(400, {"error": "bad-request", "detail": "images must be base64"})
            return
        try:
            match = await verifier.compare(probe, reference)
        except DomainError as exc:
            image = exc.extra.get("image")
            self._reply(422, {"error": exc.code, "image": image, "detail": exc.detail})
            return
        body = {"score": match.score, "threshold": match.threshold, "matched": match.matched}
        self._reply(200, body)


class HealthHandler(tornado.web.RequestHandler):
    def get(self) -> None:
        self.write({"status": "ok"})


def _same_name(registered: str, given: str) -> bool:
    # NFC so that a name typed with combining marks equals its precomposed form.
    return unicodedata.normalize("NFC", registered) == unicodedata.normalize("NFC", given.strip())


def make_app(config: RegistrySimConfig | None = None) -> tornado.web.Application:
    deps = {"config": config or RegistrySimConfig()}
    return tornado.web.Application(
        [
            (r"/v1/persons/verify", VerifyHandler, deps),
            (r"/v1/persons/photo", PhotoHandler, deps),
            (r"/v1/face/compare", FaceCompareHandler, deps),
            (r"/healthz", HealthHandler),
        ]
    )


async def serve(
    host: str,
    port: int,
    data_dir: str | None = None,
    *,
    api_key: str = DEFAULT_API_KEY,
    face: bool = True,
) -> None:
    """Run the simulator until cancelled. ``data_dir`` is unused: all data is built in."""
    loop = asyncio.get_running_loop()
    photos = await loop.run_in_executor(None, demo_photos)
    verifier: LocalFaceVerifier | None = None
    if face:
        try:
            verifier = LocalFaceVerifier()
        except RuntimeError:
            log.warning("registry simulator: /v1/face/compare disabled (no dlib)")
    config = RegistrySimConfig(api_key=api_key, photos=photos, face_verifier=verifier)
    server = make_app(config).listen(port, address=host, max_body_size=MAX_BODY_BYTES)
    try:
        await asyncio.Event().wait()
    finally:
        server.stop()
        if verifier is not None:
            verifier.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Population registry simulator")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8701)
    parser.add_argument("--api-key", default=DEFAULT_API_KEY)
    parser.add_argument("--no-face", action="store_true", help="disable /v1/face/compare")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    loops.run(serve(args.host, args.port, None, api_key=args.api_key, face=not args.no_face))


if __name__ == "__main__":
    main()
