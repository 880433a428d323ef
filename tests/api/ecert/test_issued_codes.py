"""The counter recognises a code this platform issued by the digest it remembered at
issuance, with no ECDSA verification; anything else (a code whose record is gone, the
signature twin of one, a tampered one) has its signature checked and gets the same
verdict as before: one use per code, forgeries refused as forgeries."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import cbor2
import pytest

from ecert.presentation import base45, cose
from ecert.presentation.cwt import decode_and_verify
from ecert.presenting import CTI_KEY
from tests.api.ecert.helpers import World, issue, qr, verify
from tests.support import Api

pytestmark = pytest.mark.asyncio

P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


@pytest.fixture
def ecdsa_checks(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Counts the ECDSA verifications (the real ones still run)."""
    calls: list[bytes] = []
    real = cose.verify_es256

    def counted(msg: cose.Sign1, key: Any) -> bool:
        calls.append(msg.signature)
        return real(msg, key)

    monkeypatch.setattr(cose, "verify_es256", counted)
    return calls


async def _code(api: Api, world: World) -> tuple[str, str, str]:
    """A fresh code: its text, its certificate id and its one-time key in Redis."""
    cert = await issue(api, world)
    text = (await qr(api, world, cert["id"]))["qr_text"]
    p = decode_and_verify(text, api.services.presentations._platform_key, datetime.now(UTC))
    return text, cert["id"], f"{CTI_KEY}{p.kid.hex()}:{p.cti.hex()}"


def _edit(text: str, **change: Any) -> str:
    """The code with parts of its COSE_Sign1 replaced (``payload``, ``signature``)."""
    tag = cbor2.loads(base45.decode(text[4:]))
    protected, unprotected, payload, signature = tag.value
    payload = change.get("payload", payload)
    signature = change.get("signature", signature)
    return "SZ1:" + base45.encode(
        cbor2.dumps(cbor2.CBORTag(18, [protected, unprotected, payload, signature]))
    )


def _twin(text: str) -> str:
    signature = cbor2.loads(base45.decode(text[4:])).value[3]
    s = int.from_bytes(signature[32:], "big")
    return _edit(text, signature=signature[:32] + (P256_ORDER - s).to_bytes(32, "big"))


def _tampered(text: str) -> str:
    payload = cbor2.loads(base45.decode(text[4:])).value[2]
    claims = cbor2.loads(payload)
    claims[-65537][1] = "王*"  # another name on the same code
    return _edit(text, payload=cbor2.dumps(claims, canonical=True))


async def _results(api: Api, world: World, cert_id: str) -> list[str]:
    uses = await api.get(f"/api/v1/ecert/wallet/{cert_id}/uses", token=world.citizen_token)
    return sorted(u["result"] for u in uses.json()["uses"])


async def test_an_issued_code_is_recognised_without_ecdsa(
    api: Api, world: World, ecdsa_checks: list[bytes]
) -> None:
    text, cert_id, key = await _code(api, world)
    record = await api.services.redis.get(key)
    assert record is not None and record.startswith(b"i:")  # written at issuance
    ecdsa_checks.clear()
    resp = await verify(api, world, text)
    assert resp.status_code == 200 and resp.json()["valid"] is True
    assert ecdsa_checks == []
    assert await api.services.redis.get(key) == f"u:{world.clerk_unit}".encode()
    again = await verify(api, world, text)
    assert again.status_code == 410 and again.json()["code"] == "qr-replayed"
    assert len(ecdsa_checks) == 1  # a replay is checked: a forgery is named as one
    assert await _results(api, world, cert_id) == ["qr-replayed", "valid"]


async def test_a_code_whose_record_is_gone_is_checked_by_its_signature(
    api: Api, world: World, ecdsa_checks: list[bytes]
) -> None:
    text, cert_id, key = await _code(api, world)
    await api.services.redis.delete(key)  # e.g. a Redis failover lost it
    ecdsa_checks.clear()
    assert (await verify(api, world, text)).status_code == 200
    assert len(ecdsa_checks) == 1
    again = await verify(api, world, text)
    assert again.status_code == 410 and again.json()["code"] == "qr-replayed"
    assert await _results(api, world, cert_id) == ["qr-replayed", "valid"]


async def test_the_signature_twin_of_an_issued_code_is_one_use_with_it(
    api: Api, world: World, ecdsa_checks: list[bytes]
) -> None:
    text, cert_id, _ = await _code(api, world)
    twin = _twin(text)
    assert twin != text
    ecdsa_checks.clear()
    first = await verify(api, world, twin)  # not the digest we issued: checked, valid
    assert first.status_code == 200, first.text
    assert len(ecdsa_checks) == 1
    second = await verify(api, world, text)
    assert second.status_code == 410 and second.json()["code"] == "qr-replayed"
    assert await _results(api, world, cert_id) == ["qr-replayed", "valid"]


async def test_a_tampered_code_is_a_forgery_and_uses_nothing_up(
    api: Api, world: World, ecdsa_checks: list[bytes]
) -> None:
    text, cert_id, key = await _code(api, world)
    forged = _tampered(text)
    unreadable = _edit(text, payload=cbor2.dumps(["not", "claims"]))
    for bad in (forged, unreadable):
        resp = await verify(api, world, bad)
        assert resp.status_code == 422 and resp.json()["code"] == "qr-bad-signature", resp.text
    assert (await api.services.redis.get(key) or b"").startswith(b"i:")  # still unused
    assert (await verify(api, world, text)).status_code == 200
    # Once the code is used, its forgery is still named a forgery, not a replay.
    resp = await verify(api, world, forged)
    assert resp.json()["code"] == "qr-bad-signature"
    assert await _results(api, world, cert_id) == ["valid"]


async def test_a_record_written_into_redis_by_someone_else_proves_nothing(
    api: Api, world: World
) -> None:
    """The record is a MAC under a key derived from the master key: whoever can write to
    Redis cannot make a forged code pass by writing its hash there."""
    import hashlib

    text, _, _ = await _code(api, world)
    tag = cbor2.loads(base45.decode(text[4:]))
    claims = cbor2.loads(tag.value[2])
    claims[-65537][1:3] = ["MALLORY", "999999"]
    claims[7] = b"\x01" * 16  # a fresh cti, so no record of ours exists for it
    payload = cbor2.dumps(claims, canonical=True)
    forged = _edit(text, payload=payload, signature=b"\x00" * 64)
    raw = base45.decode(forged[4:])
    kid_bytes = cbor2.loads(tag.value[0])[4]
    key = f"{CTI_KEY}{kid_bytes.hex()}:{'01' * 16}"
    await api.services.redis.set(key, b"i:" + hashlib.sha256(raw).hexdigest().encode(), ex=120)
    resp = await verify(api, world, forged)
    assert resp.status_code == 422 and resp.json()["code"] == "qr-bad-signature", resp.text


async def test_a_forged_type_code_is_a_forgery_not_a_lookup(api: Api, world: World) -> None:
    text, _, _ = await _code(api, world)
    payload = cbor2.loads(base45.decode(text[4:])).value[2]
    claims = cbor2.loads(payload)
    for bad_type in ("x\x00y", "never-issued-type"):
        claims[-65537][0] = bad_type
        forged = _edit(text, payload=cbor2.dumps(claims, canonical=True), signature=b"\0" * 64)
        resp = await verify(api, world, forged)
        assert resp.status_code == 422 and resp.json()["code"] == "qr-bad-signature", resp.text
    # Someone without the role is refused as such first.
    resp = await api.post(
        "/api/v1/ecert/verify",
        token=world.citizen_token,
        json={"qr_text": forged, "matter_code": "t-all", "unit_id": world.clerk_unit},
    )
    assert resp.status_code == 403, resp.text
