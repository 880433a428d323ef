"""Real-name (L2) and face (L3) verification over HTTP, against the registry
simulator running as a real process and dlib in the gateway's face process."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import pytest_asyncio

from identity.verification.resident_id import check_character, generate_resident_id
from server.bootstrap import Services
from server.settings import Settings
from server.sims.registry import DemoPerson
from tests.registry_sim import RegistrySim, free_port, make_persons
from tests.support import Api, random_phone, serve

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(180)]

REAL_NAME = "/api/v1/identity/me/real-name"
FACE = "/api/v1/identity/me/face"


class People:
    """Hands out registry persons no test has used yet."""

    def __init__(self, persons: list[DemoPerson]) -> None:
        self._free = list(persons)

    def take(self, *, photo: bool = False) -> DemoPerson:
        found = next(p for p in self._free if (p.photo is not None) == photo)
        self._free.remove(found)
        return found


@pytest.fixture(scope="module")
def sim() -> Iterator[RegistrySim]:
    with RegistrySim(make_persons(10, photo="astronaut") + make_persons(20)) as running:
        yield running


@pytest.fixture(scope="module")
def people(sim: RegistrySim) -> People:
    return People(sim.persons)


@pytest_asyncio.fixture(scope="module")
async def vapi(settings: Settings, services: Services, sim: RegistrySim) -> AsyncIterator[Api]:
    """The gateway wired to the simulator, comparing faces locally (the default)."""
    async with serve(
        settings.with_(
            registry_url=sim.url, registry_api_key=sim.api_key, real_name_attempts_per_day=5
        ),
        pool_size=4,
    ) as client:
        yield client


def jpeg(pixels: Any, quality: int = 85) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(pixels).convert("RGB").save(out, format="JPEG", quality=quality)
    return out.getvalue()


@pytest.fixture(scope="module")
def astronaut() -> bytes:
    from skimage import data

    return jpeg(data.astronaut())


@pytest.fixture(scope="module")
def grace_hopper() -> bytes:
    from matplotlib import cbook

    with open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False), "rb") as f:
        return f.read()


@pytest.fixture(scope="module")
def coffee() -> bytes:
    from skimage import data

    return jpeg(data.coffee())


async def signed_in(api: Api) -> dict[str, Any]:
    return await api.sign_in(random_phone())


async def refreshed(api: Api, tokens: dict[str, Any]) -> dict[str, Any]:
    resp = await api.post(
        "/api/v1/identity/token",
        json={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
    )
    assert resp.status_code == 200, resp.text
    fresh: dict[str, Any] = resp.json()
    return fresh


async def real_name(api: Api, token: str, name: str, number: str) -> Any:
    return await api.post(REAL_NAME, token=token, json={"name": name, "id_number": number})


async def at_l2(api: Api, person: DemoPerson) -> dict[str, Any]:
    tokens = await signed_in(api)
    resp = await real_name(api, tokens["access_token"], person.name, person.id_number)
    assert resp.status_code == 200, resp.text
    return await refreshed(api, tokens)


async def events(api: Api, token: str) -> list[dict[str, Any]]:
    resp = await api.get("/api/v1/identity/me/security-events", token=token)
    assert resp.status_code == 200
    found: list[dict[str, Any]] = resp.json()["events"]
    return found


def other_name(name: str) -> str:
    return name[0] + ("明" if name[1] != "明" else "亮") + name[2:]


# the journey ------------------------------------------------------------------------------


async def test_l1_to_l2_to_l3_with_refreshed_tokens(
    vapi: Api, people: People, astronaut: bytes, sim: RegistrySim, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    person = people.take(photo=True)
    tokens = await signed_in(vapi)
    l1 = tokens["access_token"]

    status = await vapi.get(REAL_NAME, token=l1)
    assert status.json() == {
        "assurance_level": "L1",
        "verified": False,
        "name": None,
        "id_number": None,
        "real_name_at": None,
        "face_at": None,
    }
    # The face needs L2 first.
    resp = await vapi.post(FACE, token=l1, content=astronaut, headers=IMAGE_JPEG)
    assert resp.status_code == 403 and resp.json()["code"] == "insufficient-assurance"
    assert resp.json()["required_level"] == "L2"

    # Lower-case x and full-width digits are what phones' input methods produce.
    typed = person.id_number.lower().replace("4", "\uff14")
    resp = await real_name(vapi, l1, f" {person.name} ", typed)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["assurance_level"] == "L2" and body["verified"] is True
    assert body["name"] == "*" + person.name[1:]
    assert body["id_number"] == person.id_number[:4] + "*" * 10 + person.id_number[-4:]
    assert body["real_name_at"] and body["face_at"] is None

    # The old token still says L1: refresh reads the new level from the database.
    resp = await vapi.post(FACE, token=l1, content=astronaut, headers=IMAGE_JPEG)
    assert resp.status_code == 403
    tokens = await refreshed(vapi, tokens)
    me = await vapi.get("/api/v1/identity/me", token=tokens["access_token"])
    assert me.json()["assurance_level"] == "L2"

    # Repeating the same verification is harmless.
    again = await real_name(vapi, tokens["access_token"], person.name, person.id_number)
    assert again.status_code == 200 and again.json()["real_name_at"] == body["real_name_at"]

    files = {"image": ("selfie.jpg", astronaut, "image/jpeg")}
    resp = await vapi.post(FACE, token=tokens["access_token"], files=files)
    assert resp.status_code == 200, resp.text
    face = resp.json()
    assert face["assurance_level"] == "L3"
    assert 0 <= face["score"] < face["threshold"] == 0.6
    tokens = await refreshed(vapi, tokens)
    me = await vapi.get("/api/v1/identity/me", token=tokens["access_token"])
    assert me.json()["assurance_level"] == "L3"
    status = (await vapi.get(REAL_NAME, token=tokens["access_token"])).json()
    assert status["assurance_level"] == "L3" and status["face_at"]

    log = await events(vapi, tokens["access_token"])
    kinds = [e["kind"] for e in log]
    assert kinds.index("face-verified") < kinds.index("real-name-verified")
    text = json.dumps(log, ensure_ascii=False)
    assert person.id_number not in text and person.name not in text

    # Other contexts (e-certificates, the OIDC real_name scope) read the identity here.
    svc = vapi.services
    sub = me.json()["sub"]
    assert await svc.realname.account_by_id_number(person.id_number.lower()) == sub
    assert await svc.realname.real_name_of(sub) == (person.name, person.id_number)
    assert await svc.realname.real_name_of(l1_sub := (await signed_in_sub(vapi))) is None
    assert l1_sub != sub

    # Personal data never reaches a log line, here or in the registry.
    for record in caplog.records:
        line = record.getMessage() + json.dumps(record.__dict__, default=str, ensure_ascii=False)
        assert person.id_number not in line and person.name not in line, record.name
    assert person.id_number not in sim.output()


IMAGE_JPEG = {"Content-Type": "image/jpeg"}


async def signed_in_sub(api: Api) -> str:
    tokens = await signed_in(api)
    me = await api.get("/api/v1/identity/me", token=tokens["access_token"])
    return str(me.json()["sub"])


async def test_the_id_number_is_stored_encrypted(vapi: Api, people: People) -> None:
    person = people.take()
    tokens = await at_l2(vapi, person)
    me = await vapi.get("/api/v1/identity/me", token=tokens["access_token"])
    async with vapi.services.pool.acquire() as conn:
        row = await conn.fetchrow("SELECT * FROM accounts WHERE id = $1", me.json()["sub"])
    raw = b"".join(v for v in row.values() if isinstance(v, bytes))
    assert person.id_number.encode() not in raw
    assert person.name.encode() not in raw
    assert row["birth_date"].strftime("%Y%m%d") == person.id_number[6:14]
    assert row["region_code"] == person.id_number[:6]


# real-name failures -------------------------------------------------------------------------


async def test_wrong_name_is_a_mismatch_and_logged_without_personal_data(
    vapi: Api, people: People
) -> None:
    person = people.take()
    token = (await signed_in(vapi))["access_token"]
    resp = await real_name(vapi, token, other_name(person.name), person.id_number)
    assert resp.status_code == 422
    assert resp.json()["code"] == "real-name-mismatch"
    status = await vapi.get(REAL_NAME, token=token)
    assert status.json()["assurance_level"] == "L1"
    [event] = [e for e in await events(vapi, token) if e["kind"] == "real-name-failed"]
    assert event["detail"] == {"reason": "name-mismatch"}


async def test_unknown_id_number_is_not_found(vapi: Api) -> None:
    token = (await signed_in(vapi))["access_token"]
    resp = await real_name(vapi, token, "李四", generate_resident_id())
    assert resp.status_code == 422
    assert resp.json()["code"] == "real-name-not-found"


@pytest.mark.parametrize(
    ("number", "says"),
    [
        ("bad-check-digit", "check digit"),
        ("44030519900230" + "123", "not a real date"),  # 30 February
        ("12345", "18 characters"),
    ],
)
async def test_local_checks_reject_before_the_registry(
    vapi: Api, people: People, number: str, says: str
) -> None:
    if number == "bad-check-digit":
        good = people.take().id_number
        number = good[:17] + ("0" if good[17] != "0" else "1")
    elif len(number) == 17:
        number += check_character(number)
    token = (await signed_in(vapi))["access_token"]
    resp = await real_name(vapi, token, "李四", number)
    assert resp.status_code == 422
    body = resp.json()
    assert body["code"] == "validation-failed" and body["field"] == "id_number"
    assert says in body["detail"] and number not in resp.text
    [event] = [e for e in await events(vapi, token) if e["kind"] == "real-name-failed"]
    assert event["detail"] == {"reason": "invalid-id-number"}


@pytest.mark.parametrize("name", ["", "张3", "<script>", 42, "张" * 61])
async def test_implausible_names_are_rejected(vapi: Api, people: People, name: Any) -> None:
    token = (await signed_in(vapi))["access_token"]
    resp = await real_name(vapi, token, name, people.take().id_number)
    assert resp.status_code == 422
    assert resp.json()["field"] == "name"


async def test_an_id_number_binds_to_one_account(vapi: Api, people: People) -> None:
    person = people.take()
    first = await at_l2(vapi, person)
    token = (await signed_in(vapi))["access_token"]
    resp = await real_name(vapi, token, person.name, person.id_number)
    assert resp.status_code == 409
    assert resp.json()["code"] == "id-number-bound"
    assert (await vapi.get(REAL_NAME, token=token)).json()["verified"] is False
    # ...and an account keeps the identity it was verified with.
    other = people.take()
    resp = await real_name(vapi, first["access_token"], other.name, other.id_number)
    assert resp.status_code == 409
    assert resp.json()["code"] == "real-name-already-verified"


async def test_concurrent_bindings_of_one_number_exactly_one_wins(
    vapi: Api, people: People
) -> None:
    person = people.take()
    tokens = [(await signed_in(vapi))["access_token"] for _ in range(4)]
    answers = await asyncio.gather(
        *(real_name(vapi, t, person.name, person.id_number) for t in tokens)
    )
    assert sorted(r.status_code for r in answers) == [200, 409, 409, 409]
    assert {r.json()["code"] for r in answers if r.status_code == 409} == {"id-number-bound"}
    levels = [(await vapi.get(REAL_NAME, token=t)).json()["verified"] for t in tokens]
    assert levels.count(True) == 1
    winner = next(a for a in answers if a.status_code == 200)
    assert winner.json()["id_number"].endswith(person.id_number[-4:])


async def test_attempts_per_account_are_limited(vapi: Api, people: People) -> None:
    person = people.take()
    token = (await signed_in(vapi))["access_token"]
    for _ in range(5):
        resp = await real_name(vapi, token, other_name(person.name), person.id_number)
        assert resp.status_code == 422
    resp = await real_name(vapi, token, person.name, person.id_number)
    assert resp.status_code == 429
    assert resp.json()["code"] == "too-many-verification-attempts"
    assert 0 < int(resp.headers["Retry-After"]) <= 86400
    # Another account is not affected.
    other = (await signed_in(vapi))["access_token"]
    assert (await real_name(vapi, other, person.name, person.id_number)).status_code == 200


async def test_registry_down_is_503(settings: Settings, services: Services) -> None:
    async with serve(
        settings.with_(registry_url=f"http://127.0.0.1:{free_port()}"), pool_size=4
    ) as api:
        token = (await signed_in(api))["access_token"]
        resp = await real_name(api, token, "李四", generate_resident_id())
        assert resp.status_code == 503
        assert resp.json()["code"] == "registry-unavailable"
        [event] = [e for e in await events(api, token) if e["kind"] == "real-name-failed"]
        assert event["detail"] == {"reason": "registry-unavailable"}


# face failures ------------------------------------------------------------------------------


async def test_someone_elses_face_is_a_mismatch(
    vapi: Api, people: People, grace_hopper: bytes
) -> None:
    tokens = await at_l2(vapi, people.take(photo=True))
    resp = await vapi.post(
        FACE, token=tokens["access_token"], content=grace_hopper, headers=IMAGE_JPEG
    )
    assert resp.status_code == 422, resp.text
    body = resp.json()
    assert body["code"] == "face-mismatch"
    assert body["score"] >= body["threshold"] == 0.6
    tokens = await refreshed(vapi, tokens)
    assert (await vapi.get(REAL_NAME, token=tokens["access_token"])).json()["face_at"] is None
    failed = [e for e in await events(vapi, tokens["access_token"]) if e["kind"] == "face-failed"]
    assert failed[0]["detail"]["reason"] == "face-mismatch"


async def test_a_photo_without_a_face(vapi: Api, people: People, coffee: bytes) -> None:
    tokens = await at_l2(vapi, people.take(photo=True))
    files = {"image": ("coffee.jpg", coffee, "image/jpeg")}
    resp = await vapi.post(FACE, token=tokens["access_token"], files=files)
    assert resp.status_code == 422
    assert resp.json()["code"] == "face-not-found"
    assert resp.json()["image"] == "probe"


async def test_no_id_photo_on_file(vapi: Api, people: People, astronaut: bytes) -> None:
    tokens = await at_l2(vapi, people.take(photo=False))
    resp = await vapi.post(
        FACE, token=tokens["access_token"], content=astronaut, headers=IMAGE_JPEG
    )
    assert resp.status_code == 422
    assert resp.json()["code"] == "reference-photo-missing"


async def test_bad_uploads(vapi: Api, people: People) -> None:
    tokens = await at_l2(vapi, people.take(photo=True))
    token = tokens["access_token"]
    resp = await vapi.post(FACE, token=token, content=b"not an image", headers=IMAGE_JPEG)
    assert resp.status_code == 422 and resp.json()["code"] == "invalid-image"
    resp = await vapi.post(FACE, token=token, files={"photo": ("a.jpg", b"x", "image/jpeg")})
    assert resp.status_code == 422 and resp.json()["field"] == "image"
    resp = await vapi.post(FACE, token=token, content=b"x", headers={"Content-Type": "image/gif"})
    assert resp.status_code == 415
    resp = await vapi.post(FACE, token=token, content=b"", headers=IMAGE_JPEG)
    assert resp.status_code == 422 and resp.json()["code"] == "invalid-image"


async def test_an_upload_over_the_cap_is_413(vapi: Api, people: People) -> None:
    tokens = await at_l2(vapi, people.take(photo=True))
    token = tokens["access_token"]

    async def six_mib() -> AsyncIterator[bytes]:  # chunked: the cap holds while streaming
        for _ in range(6):
            yield b"\0" * (1024 * 1024)

    resp = await vapi.post(FACE, token=token, content=six_mib(), headers=IMAGE_JPEG)
    assert resp.status_code == 413
    assert resp.json()["code"] == "payload-too-large"

    # A declared Content-Length over the cap is refused before the body is read.
    host, port = vapi.base_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        f"POST {FACE} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: image/jpeg\r\nContent-Length: {6 * 1024 * 1024}\r\n\r\n".encode()
        + b"\xff\xd8\xff"
    )
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    assert head.startswith(b"HTTP/1.1 413 ")
    assert b"application/problem+json" in head


# the contract -------------------------------------------------------------------------------


async def test_routes_need_a_signed_in_citizen(vapi: Api) -> None:
    assert (await vapi.get(REAL_NAME)).status_code == 401
    assert (await vapi.post(REAL_NAME, json={"name": "李四"})).status_code == 401
    assert (await vapi.post(FACE, content=b"x", headers=IMAGE_JPEG)).status_code == 401


async def test_openapi_declares_the_routes(vapi: Api) -> None:
    spec = (await vapi.get("/openapi.json")).json()
    assert {"get", "post"} <= set(spec["paths"][REAL_NAME])
    face = spec["paths"][FACE]["post"]
    assert {"multipart/form-data", "image/jpeg", "image/png"} <= set(face["requestBody"]["content"])
    assert "413" in face["responses"] and "403" in face["responses"]


async def test_an_http_face_provider(
    settings: Settings, services: Services, sim: RegistrySim, people: People, astronaut: bytes
) -> None:
    """SUPERAPP_FACE_PROVIDER=http: the simulator also speaks the face provider's wire format."""
    async with serve(
        settings.with_(registry_url=sim.url, registry_api_key=sim.api_key, face_provider="http"),
        pool_size=4,
    ) as api:
        assert api.services.face_executor is None
        tokens = await at_l2(api, people.take(photo=True))
        resp = await api.post(
            FACE, token=tokens["access_token"], content=astronaut, headers=IMAGE_JPEG
        )
        assert resp.status_code == 200, resp.text
        assert resp.json()["assurance_level"] == "L3"


async def test_demo_citizen_is_real_name_verified(services: Services) -> None:
    from server.demo.identity import CITIZEN_PERSON, seed_identity
    from server.demo.seed import ACCOUNTS
    from server.sims.registry import persons

    phone = next(p for name, p, _, _ in ACCOUNTS if name == "citizen")
    async with services.pool.acquire() as conn:
        account, _ = await services.identity_repo.get_or_create_account(conn, phone)
    for _ in range(2):  # idempotent
        accounts: dict[str, dict[str, Any]] = {"citizen": {"phone": phone, "sub": account.id}}
        registry = await seed_identity(services, accounts)
    citizen = accounts["citizen"]
    assert citizen["assurance_level"] == "L2"
    assert citizen["real_name"]["name"] == "*" + CITIZEN_PERSON[1:]
    bound = next(p for p in persons() if p.name == CITIZEN_PERSON)
    assert bound.photo == "astronaut"
    assert await services.realname.account_by_id_number(bound.id_number) == account.id
    listed = {p["name"] for p in registry["persons"]}
    assert CITIZEN_PERSON not in listed and len(listed) >= 3
    assert all({"name", "id_number", "phone"} <= set(p) for p in registry["persons"])
    async with services.pool.acquire() as conn:
        verified = await conn.fetchval(
            "SELECT count(*) FROM security_events WHERE account_id = $1 AND kind = $2",
            account.id,
            "real-name-verified",
        )
    assert verified == 1


async def test_face_provider_down_is_503(
    settings: Settings, vapi: Api, sim: RegistrySim, people: People, astronaut: bytes
) -> None:
    tokens = await at_l2(vapi, people.take(photo=True))
    async with serve(
        settings.with_(
            registry_url=sim.url,
            registry_api_key=sim.api_key,
            face_provider="http",
            face_url=f"http://127.0.0.1:{free_port()}",
        ),
        pool_size=4,
    ) as api:
        resp = await api.post(
            FACE, token=tokens["access_token"], content=astronaut, headers=IMAGE_JPEG
        )
        assert resp.status_code == 503
        assert resp.json()["code"] == "face-service-unavailable"
        status = (await api.get(REAL_NAME, token=tokens["access_token"])).json()
        assert status["assurance_level"] == "L2"


async def test_face_attempts_are_limited(
    settings: Settings, vapi: Api, sim: RegistrySim, people: People, grace_hopper: bytes
) -> None:
    tokens = await at_l2(vapi, people.take(photo=True))
    async with serve(
        settings.with_(
            registry_url=sim.url,
            registry_api_key=sim.api_key,
            face_provider="http",
            face_attempts_per_day=2,
        ),
        pool_size=4,
    ) as api:
        for _ in range(2):
            resp = await api.post(
                FACE, token=tokens["access_token"], content=grace_hopper, headers=IMAGE_JPEG
            )
            assert resp.json()["code"] == "face-mismatch"
        resp = await api.post(
            FACE, token=tokens["access_token"], content=grace_hopper, headers=IMAGE_JPEG
        )
        assert resp.status_code == 429
        assert resp.json()["code"] == "too-many-verification-attempts"


async def test_redis_down_fails_closed(
    settings: Settings, vapi: Api, sim: RegistrySim, people: People
) -> None:
    token = (await signed_in(vapi))["access_token"]
    person = people.take()
    async with serve(
        settings.with_(
            registry_url=sim.url,
            registry_api_key=sim.api_key,
            redis_url=f"redis://127.0.0.1:{free_port()}/0",
        ),
        pool_size=4,
    ) as api:
        resp = await real_name(api, token, person.name, person.id_number)
        assert resp.status_code == 503
        assert resp.json()["code"] == "dependency-unavailable"
        assert (await api.get(REAL_NAME, token=token)).json()["verified"] is False
