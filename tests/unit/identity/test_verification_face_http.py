"""How the HTTP face adapter maps a provider's answers (the happy path runs on the simulator)."""

from __future__ import annotations

import base64
import json

import httpx
import pytest

from identity.errors import DependencyUnavailable
from identity.verification.errors import (
    FaceServiceBadResponse,
    InvalidImage,
    MultipleFaces,
)
from identity.verification.face import FaceMatch, HttpFaceVerifier

PROBE, REFERENCE = b"\xff\xd8probe", b"\xff\xd8reference"


def provider(response: httpx.Response, seen: list[httpx.Request] | None = None) -> HttpFaceVerifier:
    def handler(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        return response

    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return HttpFaceVerifier("https://faces.test", client, "k3y", max_image_bytes=1000)


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_match_answer_and_request_shape() -> None:
    seen: list[httpx.Request] = []
    ok = httpx.Response(200, json={"score": 0.31, "threshold": 0.6, "matched": True})
    assert await provider(ok, seen).compare(PROBE, REFERENCE) == FaceMatch(0.31, 0.6, True)
    body = json.loads(seen[0].content)
    assert base64.b64decode(body["probe_image"]) == PROBE
    assert base64.b64decode(body["reference_image"]) == REFERENCE
    assert seen[0].headers["X-Api-Key"] == "k3y"


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_provider_errors_keep_their_code_and_image() -> None:
    answer = httpx.Response(422, json={"error": "face-multiple", "image": "probe", "detail": "2"})
    with pytest.raises(MultipleFaces) as caught:
        await provider(answer).compare(PROBE, REFERENCE)
    assert caught.value.extra == {"image": "probe"}


@pytest.mark.expect_error_logs  # the adapter logs a refused key at ERROR on purpose
@pytest.mark.asyncio
@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    ("response", "error"),
    [
        (
            httpx.Response(200, json={"score": True, "threshold": 0.6, "matched": True}),
            FaceServiceBadResponse,
        ),
        (
            httpx.Response(200, json={"score": 0.3, "threshold": 0.6, "matched": "yes"}),
            FaceServiceBadResponse,
        ),
        (httpx.Response(200, text="ok"), FaceServiceBadResponse),
        (httpx.Response(422, json={"error": "something-else"}), FaceServiceBadResponse),
        (httpx.Response(401, json={"error": "unauthorized"}), FaceServiceBadResponse),
        (httpx.Response(503), DependencyUnavailable),
    ],
)
async def test_malformed_or_failed_answers(
    response: httpx.Response, error: type[Exception]
) -> None:
    with pytest.raises(error):
        await provider(response).compare(PROBE, REFERENCE)


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_oversized_image_is_refused_before_any_request() -> None:
    seen: list[httpx.Request] = []
    ok = httpx.Response(200, json={"score": 0.31, "threshold": 0.6, "matched": True})
    with pytest.raises(InvalidImage) as caught:
        await provider(ok, seen).compare(PROBE, b"x" * 1001)
    assert caught.value.extra == {"image": "reference"}
    assert seen == []
