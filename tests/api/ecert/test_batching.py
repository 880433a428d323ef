"""The counter's batched round trips keep one verdict per scan: a bad row in a
group-committed use-log insert fails only its own caller, one code twice in one
Redis batch (one script call) is consumed once, and the grant is checked per scanner.

The rounds (``Presentations._rounds``) hand each statement and each script call a
batch; these tests hand them batches directly."""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
import time

import asyncpg
import pytest
from redis.exceptions import ResponseError

from ecert.presenting import CTI_KEY
from ecert.repository import NewUse
from tests.api.ecert.helpers import World, issue, qr, verify
from tests.support import Api

pytestmark = pytest.mark.asyncio


async def test_a_bad_row_fails_only_its_own_use_log_insert(api: Api, world: World) -> None:
    svc = api.services
    p = svc.presentations
    made = await issue(api, world)
    cert = await svc.certificates.own(world.citizen_sub, made["id"])
    ghost = dataclasses.replace(cert, id="crt_" + secrets.token_hex(8))  # no such certificate

    def use(c: object, result: str) -> NewUse:
        return NewUse(
            "ver_" + secrets.token_hex(8), c, "verification", world.clerk_unit, None, "t-all",
            result, ["name"],
        )  # fmt: skip

    good1, bad, good2 = use(cert, "valid"), use(ghost, "valid"), use(cert, "qr-replayed")
    clerk = svc.tokens.verify_access(world.clerk_token).sub
    scan = (clerk, world.clerk_unit, cert.status_list_id, cert.status_idx)
    # Lookups share the statement with the inserts: they still get their answer.
    results = await p._pg_batch([good1, scan, bad, good2])
    assert results[0] is None and results[3] is None
    assert isinstance(results[2], asyncpg.ForeignKeyViolationError)
    allowed, found = results[1]
    assert allowed and found is not None and found.id == cert.id
    rows = await svc.pool.fetch(
        "SELECT id, result, fields FROM ecert_uses WHERE certificate_id = $1", cert.id
    )
    assert {(r["id"], r["result"], tuple(r["fields"])) for r in rows} == {
        (good1.use_id, "valid", ("name",)),
        (good2.use_id, "qr-replayed", ("name",)),
    }
    # The holder sees the committed rows through the API.
    uses = await api.get(f"/api/v1/ecert/wallet/{cert.id}/uses", token=world.citizen_token)
    assert sorted(u["result"] for u in uses.json()["uses"]) == ["qr-replayed", "valid"]


async def test_one_code_twice_in_one_batch_is_consumed_once(api: Api) -> None:
    p = api.services.presentations
    key = f"{CTI_KEY}test:{secrets.token_hex(16)}"
    exat = int(time.time()) + 600
    first, second, other = await p._consume_batch(
        [(key, "unit-a", exat, b""), (key, "unit-b", exat, b""), (key + "x", "unit-a", exat, b"")]
    )
    assert (first, second, other) == (True, False, True)
    assert await api.services.redis.get(key) == b"u:unit-a"


async def test_grant_is_checked_per_scanner_within_one_batch(api: Api, world: World) -> None:
    svc = api.services
    made = await issue(api, world)
    cert = await svc.certificates.own(world.citizen_sub, made["id"])
    clerk = svc.tokens.verify_access(world.clerk_token).sub
    ref = (cert.status_list_id, cert.status_idx)
    (ok, c1), (denied, c2), (other_unit, _), (ok2, none) = await svc.presentations._pg_batch(
        [
            (clerk, world.clerk_unit, *ref),
            (world.citizen_sub, world.clerk_unit, *ref),
            (clerk, world.unit_id, *ref),
            (clerk, world.clerk_unit, None, None),
        ]
    )
    assert ok and not denied and not other_unit and ok2
    assert c1 is not None and c1.id == cert.id and c2 is not None and none is None
    # A scan PostgreSQL refuses (NUL in text) fails alone, not its batch.
    good, bad = await svc.presentations._pg_batch(
        [(clerk, world.clerk_unit, *ref), (clerk, "unit\x00", *ref)]
    )
    assert isinstance(bad, asyncpg.PostgresError) and good[0] and good[1].id == cert.id


async def test_concurrent_scans_of_many_codes_each_get_their_own_answer(
    api: Api, world: World
) -> None:
    made = [await issue(api, world) for _ in range(3)]
    texts = [(await qr(api, world, c["id"]))["qr_text"] for c in made]
    scans = [texts[0], texts[1], texts[0], texts[2], texts[1], "SZ1:NOT-BASE45!"]
    results = await asyncio.gather(*(verify(api, world, t) for t in scans))
    codes = [r.status_code if r.status_code == 200 else r.json()["code"] for r in results]
    assert sorted(codes[:5], key=str) == sorted(
        [200, 200, 200, "qr-replayed", "qr-replayed"], key=str
    )
    assert codes[5] == "qr-bad-encoding"
    assert codes[3] == 200  # the third code was scanned once
    assert api.services.presentations._pg_conn is None  # handed back to the pool when idle


async def test_a_unit_id_the_database_would_refuse_is_refused_before_the_scan(
    api: Api, world: World
) -> None:
    made = await issue(api, world)
    text = (await qr(api, world, made["id"]))["qr_text"]
    resp = await api.post(
        "/api/v1/ecert/verify",
        token=world.clerk_token,
        json={"qr_text": text, "matter_code": "t-all", "unit_id": "unt_\x00"},
    )
    # NUL never reaches the verifier: the JSON body is refused as a whole (server/http.py).
    assert resp.status_code == 400 and resp.json()["code"] == "invalid-json", resp.text
    assert (await verify(api, world, text)).status_code == 200  # the code was not consumed


async def test_a_scan_reads_and_decrypts_no_claims(
    api: Api, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The counter's answer shows the code's own masked claims: the scan's statement
    fetches neither the claims nor the credential, so nothing is decrypted per scan."""
    good, gone = await issue(api, world), await issue(api, world)
    texts = [(await qr(api, world, c["id"]))["qr_text"] for c in (good, gone)]
    revoked = await api.post(
        f"/api/v1/ecert/certificates/{gone['id']}/revoke",
        token=world.issuer_token,
        json={"reason": "test"},
    )
    assert revoked.status_code == 200, revoked.text

    def no_decrypt(*_: object, **__: object) -> bytes:
        raise AssertionError("a scan decrypted something")

    monkeypatch.setattr(api.services.presentations.repo.vault, "decrypt", no_decrypt)
    resp = await verify(api, world, texts[0])
    assert resp.status_code == 200, resp.text
    assert resp.json()["status"] == "valid" and resp.json()["claims"]
    resp = await verify(api, world, texts[1])
    assert resp.json()["code"] == "certificate-revoked", resp.text


async def test_a_redis_error_in_the_consume_script_fails_closed(
    api: Api, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = await issue(api, world)
    text = (await qr(api, world, made["id"]))["qr_text"]
    p = api.services.presentations

    async def refused(**_: object) -> object:
        raise ResponseError("OOM command not allowed when used memory > 'maxmemory'")

    monkeypatch.setattr(p, "_consume_script", refused)
    resp = await verify(api, world, text)
    assert resp.status_code == 503 and resp.json()["code"] == "dependency-unavailable"
    monkeypatch.undo()
    assert (await verify(api, world, text)).status_code == 200  # nothing was consumed


async def test_one_round_keeps_each_scans_verdict_order_and_log(api: Api, world: World) -> None:
    """Scans that share a round: refused ones (no role, unknown matter) consume nothing
    and log nothing; of one code scanned twice one passes and one is a replay, both
    logged before their answers."""
    made = await issue(api, world)
    texts = [(await qr(api, world, made["id"]))["qr_text"] for _ in range(3)]
    twice, stranger, unknown = texts
    refused = api.post(
        "/api/v1/ecert/verify",
        token=world.citizen_token,
        json={"qr_text": stranger, "matter_code": "t-all", "unit_id": world.clerk_unit},
    )
    results = await asyncio.gather(
        verify(api, world, twice),
        verify(api, world, twice),
        refused,
        verify(api, world, unknown, matter="no-such-matter"),
    )
    codes = [r.status_code if r.status_code == 200 else r.json()["code"] for r in results]
    assert sorted(codes[:2], key=str) == [200, "qr-replayed"], codes
    assert codes[2:] == ["forbidden", "unknown-matter"], codes
    uses = await api.get(f"/api/v1/ecert/wallet/{made['id']}/uses", token=world.citizen_token)
    assert sorted(u["result"] for u in uses.json()["uses"]) == ["qr-replayed", "valid"]
    for text in (stranger, unknown):  # neither refused scan used its code up
        assert (await verify(api, world, text)).status_code == 200


async def test_the_consume_script_is_loaded_again_after_a_script_flush(api: Api) -> None:
    p = api.services.presentations
    key = f"{CTI_KEY}test:{secrets.token_hex(16)}"
    exat = int(time.time()) + 600
    assert await p._consume_batch([(key, "unit-a", exat, b"")]) == [True]
    await api.services.redis.script_flush()  # e.g. a Redis restart: the cache is empty
    assert await p._consume_batch(
        [(key, "unit-b", exat, b""), (key + "y", "unit-b", exat, b"")]
    ) == [
        False,
        True,
    ]
    assert await api.services.redis.get(key) == b"u:unit-a"


async def test_a_lost_consume_connection_is_replaced(api: Api) -> None:
    p = api.services.presentations
    key = f"{CTI_KEY}test:{secrets.token_hex(16)}"
    exat = int(time.time()) + 600
    assert await p._consume_batch([(key, "unit-a", exat, b"")]) == [True]
    await api.services.redis.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
    assert await p._consume_batch(
        [(key, "unit-b", exat, b""), (key + "z", "unit-b", exat, b"")]
    ) == [
        False,
        True,
    ]
