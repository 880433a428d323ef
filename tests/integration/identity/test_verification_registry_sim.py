"""Real-name and face verification against the registry simulator as a real process."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import phonenumbers
import pytest

from identity.verification.errors import (
    FaceNotFound,
    FaceServiceBadResponse,
    RegistryCredentialsRejected,
)
from identity.verification.face import HttpFaceVerifier, LocalFaceVerifier
from identity.verification.registry import HttpPopulationRegistry, RegistryResult
from identity.verification.resident_id import Sex, generate_resident_id, parse_resident_id
from server.sims.registry import persons
from tests.support import free_port

API_KEY = "integration-registry-key"
ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def sim_url() -> Iterator[str]:
    port = free_port()
    code = (
        "import asyncio; from server.sims.registry import serve; "
        f"asyncio.run(serve('127.0.0.1', {port}, None, api_key={API_KEY!r}))"
    )
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-W", "error", "-c", code],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60  # importing scikit-image and dlib takes seconds
            while True:
                if process.poll() is not None:
                    log.seek(0)
                    pytest.fail(f"simulator exited: {log.read().decode(errors='replace')}")
                try:
                    if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    pytest.fail("simulator did not start")
                time.sleep(0.1)
            yield url
        finally:
            process.terminate()
            process.wait(timeout=10)


def person(name: str) -> tuple[str, str]:
    found = next(p for p in persons() if p.name == name)
    return found.name, found.id_number


def test_demo_persons_are_valid_and_distinct() -> None:
    demo = persons()
    assert 5 <= len(demo) <= 10
    assert len({p.id_number for p in demo}) == len({p.phone for p in demo}) == len(demo)
    for p in demo:
        parsed = parse_resident_id(p.id_number)
        phone = phonenumbers.parse(p.phone)
        assert p.phone.startswith("+86") and phonenumbers.is_valid_number(phone)
        if p.photo:  # both photographed people are women: the ID number must say so
            assert parsed.sex is Sex.FEMALE
    assert sorted(p.photo for p in demo if p.photo) == ["astronaut", "grace_hopper"]


@pytest.mark.expect_error_logs  # the adapter logs a refused key at ERROR on purpose
@pytest.mark.asyncio
@pytest.mark.timeout(90)
async def test_real_name_check_over_http(sim_url: str) -> None:
    name, number = person("林嘉怡")
    async with httpx.AsyncClient() as client:
        registry = HttpPopulationRegistry(sim_url, client, API_KEY)
        assert await registry.check(name, number) is RegistryResult.MATCH
        assert await registry.check("林家怡", number) is RegistryResult.NAME_MISMATCH
        unknown = generate_resident_id(region_code="440305")
        assert unknown not in {p.id_number for p in persons()}
        assert await registry.check(name, unknown) is RegistryResult.NOT_FOUND
        # The registry stores the upper-case X; a lower-case x still finds the person.
        wang, wang_number = person("王建国")
        assert wang_number.endswith("X")
        assert await registry.check(wang, wang_number.lower()) is RegistryResult.MATCH

        wrong_key = HttpPopulationRegistry(sim_url, client, API_KEY + "x")
        with pytest.raises(RegistryCredentialsRejected) as caught:
            await wrong_key.check(name, number)
        assert caught.value.kind == "bad_gateway"
        with pytest.raises(RegistryCredentialsRejected):
            await wrong_key.reference_photo(number)


@pytest.mark.asyncio
@pytest.mark.timeout(90)
async def test_reference_photo_then_local_face_comparison(sim_url: str) -> None:
    from PIL import Image
    from skimage import data

    async with httpx.AsyncClient() as client:
        registry = HttpPopulationRegistry(sim_url, client, API_KEY)
        collins = await registry.reference_photo(person("林嘉怡")[1])
        hopper = await registry.reference_photo(person("何佩玲")[1])
        assert await registry.reference_photo(person("张三丰")[1]) is None  # no photo on file
        assert await registry.reference_photo(generate_resident_id()) is None
    assert collins is not None and hopper is not None
    assert collins.startswith(b"\xff\xd8\xff") and hopper.startswith(b"\xff\xd8\xff")

    probe = io.BytesIO()
    Image.fromarray(data.astronaut()).resize((320, 320)).save(probe, format="JPEG", quality=75)
    verifier = LocalFaceVerifier()
    try:
        same = await verifier.compare(probe.getvalue(), collins)
        other = await verifier.compare(probe.getvalue(), hopper)
    finally:
        verifier.close()
    assert same.matched and not other.matched


@pytest.mark.expect_error_logs  # the adapter logs a refused key at ERROR on purpose
@pytest.mark.asyncio
@pytest.mark.timeout(90)
async def test_http_face_provider_on_the_simulator(sim_url: str) -> None:
    from PIL import Image
    from skimage import data

    probe = io.BytesIO()
    Image.fromarray(data.astronaut()).save(probe, format="PNG")
    coffee = io.BytesIO()
    Image.fromarray(data.coffee()).save(coffee, format="JPEG")
    async with httpx.AsyncClient() as client:
        registry = HttpPopulationRegistry(sim_url, client, API_KEY)
        collins = await registry.reference_photo(person("林嘉怡")[1])
        hopper = await registry.reference_photo(person("何佩玲")[1])
        assert collins is not None and hopper is not None
        faces = HttpFaceVerifier(sim_url, client, API_KEY)
        same = await faces.compare(probe.getvalue(), collins)
        assert same.matched and same.score < same.threshold == 0.6
        assert not (await faces.compare(probe.getvalue(), hopper)).matched
        with pytest.raises(FaceNotFound) as caught:
            await faces.compare(collins, coffee.getvalue())
        assert caught.value.extra == {"image": "reference"}
        with pytest.raises(FaceServiceBadResponse):
            await HttpFaceVerifier(sim_url, client, "wrong").compare(probe.getvalue(), collins)
