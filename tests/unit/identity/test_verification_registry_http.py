"""How the registry adapter behaves when the registry misbehaves.

The well-behaved path runs against the real simulator process in
tests/integration/identity/test_verification_registry_sim.py; here httpx's
MockTransport stands in for answers the simulator never gives, and real
sockets for a dead or silent registry.
"""

from __future__ import annotations

import asyncio
import base64
import json
import socket
from collections.abc import Callable

import httpx
import pytest

from identity.errors import DependencyUnavailable
from identity.verification.errors import (
    RegistryBadResponse,
    RegistryCredentialsRejected,
    RegistryUnavailable,
)
from identity.verification.registry import (
    API_KEY_HEADER,
    MAX_RESPONSE_BYTES,
    HttpPopulationRegistry,
    RegistryResult,
)

NUMBER = "440305198608126485"


def registry(handler: Callable[[httpx.Request], httpx.Response]) -> HttpPopulationRegistry:
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return HttpPopulationRegistry("https://registry.test/", client, "k3y", timeout=1.0)


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_request_carries_key_and_personal_data_only_in_the_body() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"result": "match"})

    assert await registry(handler).check("林嘉怡", NUMBER) is RegistryResult.MATCH
    (request,) = seen
    assert request.method == "POST"
    assert str(request.url) == "https://registry.test/v1/persons/verify"
    assert request.headers[API_KEY_HEADER] == "k3y"
    assert json.loads(request.content) == {"name": "林嘉怡", "id_number": NUMBER}


@pytest.mark.expect_error_logs  # the adapter logs a refused key at ERROR on purpose
@pytest.mark.asyncio
@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    ("response", "error"),
    [
        (httpx.Response(200, json={"result": "maybe"}), RegistryBadResponse),
        (httpx.Response(200, json=["match"]), RegistryBadResponse),
        (httpx.Response(200, content=b"<html>oops</html>"), RegistryBadResponse),
        (httpx.Response(404, json={"error": "not-found"}), RegistryBadResponse),
        (httpx.Response(401, json={"error": "unauthorized"}), RegistryCredentialsRejected),
        (httpx.Response(403), RegistryCredentialsRejected),
        (httpx.Response(502), RegistryUnavailable),
        (httpx.Response(429), RegistryUnavailable),
    ],
)
async def test_unexpected_check_answers_become_domain_errors(
    response: httpx.Response, error: type[Exception]
) -> None:
    with pytest.raises(error):
        await registry(lambda _: response).check("林嘉怡", NUMBER)


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_retry_after_of_an_overloaded_registry_is_passed_on() -> None:
    response = httpx.Response(503, headers={"Retry-After": "7"})
    with pytest.raises(RegistryUnavailable) as caught:
        await registry(lambda _: response).check("林嘉怡", NUMBER)
    assert caught.value.extra == {"retry_after": 7}
    assert caught.value.kind == "unavailable"


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_photo_answers() -> None:
    jpeg = b"\xff\xd8\xff\xe0 not really a jpeg"
    ok = httpx.Response(
        200, json={"media_type": "image/jpeg", "photo": base64.b64encode(jpeg).decode()}
    )
    assert await registry(lambda _: ok).reference_photo(NUMBER) == jpeg

    none = httpx.Response(404, json={"error": "not-found"})
    assert await registry(lambda _: none).reference_photo(NUMBER) is None

    # A 404 that is not the registry's own (wrong base URL) must not read as "no photo".
    bare = httpx.Response(404, text="Not Found")
    with pytest.raises(RegistryBadResponse):
        await registry(lambda _: bare).reference_photo(NUMBER)

    garbled = httpx.Response(200, json={"photo": "***"})
    with pytest.raises(RegistryBadResponse):
        await registry(lambda _: garbled).reference_photo(NUMBER)

    huge = httpx.Response(200, content=b" " * (MAX_RESPONSE_BYTES + 1))
    with pytest.raises(RegistryBadResponse, match="too large"):
        await registry(lambda _: huge).reference_photo(NUMBER)


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_unreachable_registry_is_dependency_unavailable() -> None:
    with socket.socket() as sock:  # a port nobody listens on once closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with httpx.AsyncClient() as client:
        adapter = HttpPopulationRegistry(f"http://127.0.0.1:{port}", client, "k3y")
        with pytest.raises(DependencyUnavailable) as caught:
            await adapter.check("林嘉怡", NUMBER)
    assert caught.value.code == "registry-unavailable"


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_silent_registry_times_out() -> None:
    writers: list[asyncio.StreamWriter] = []

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        while await reader.read(65536):  # read the request, never answer, until hung up
            pass

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with httpx.AsyncClient() as client:
            adapter = HttpPopulationRegistry(f"http://127.0.0.1:{port}", client, "k3y", timeout=0.3)
            loop = asyncio.get_running_loop()
            started = loop.time()
            with pytest.raises(RegistryUnavailable, match="in time"):
                await adapter.check("林嘉怡", NUMBER)
            assert loop.time() - started < 3
    finally:
        server.close()
        for writer in writers:
            writer.close()
            await writer.wait_closed()
        await server.wait_closed()
