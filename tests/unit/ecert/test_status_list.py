"""Token Status List: the draft's own vectors, packing, and the signed list (JWT)."""

from __future__ import annotations

import json
import zlib
from datetime import datetime, timedelta
from typing import Any

import jwt
import pytest

from ecert.errors import StatusListInvalid
from ecert.presentation import keys
from ecert.presentation.status_list import (
    STATUS_INVALID,
    STATUS_SUSPENDED,
    STATUS_VALID,
    StatusList,
    sign_status_list,
    verify_status_list_token,
)

URI = "https://sz.gov.cn/sl/1"

# draft-ietf-oauth-status-list, "Status List in JSON Format" (1 bit) and
# "Further Examples" (2 bits): statuses, the byte array, and the encoded list.
BITS1 = [1, 0, 0, 1, 1, 1, 0, 1, 1, 1, 0, 0, 0, 1, 0, 1]
BITS1_BYTES = bytes([0xB9, 0xA3])
BITS1_LST = "eNrbuRgAAhcBXQ"
BITS2 = [1, 2, 0, 3, 0, 1, 0, 1, 1, 2, 3, 3]
BITS2_BYTES = bytes([0xC9, 0x44, 0xF9])
BITS2_LST = "eNo76fITAAPfAgc"


@pytest.mark.parametrize(
    ("bits", "statuses", "raw", "lst"),
    [(1, BITS1, BITS1_BYTES, BITS1_LST), (2, BITS2, BITS2_BYTES, BITS2_LST)],
)
def test_draft_vectors(bits: int, statuses: list[int], raw: bytes, lst: str) -> None:
    built = StatusList(len(statuses), bits)
    for idx, value in enumerate(statuses):
        built.set(idx, value)
    assert built.to_bytes() == raw
    assert built.to_claim() == {"bits": bits, "lst": lst}
    parsed = StatusList.from_claim({"bits": bits, "lst": lst})
    assert [parsed.get(i) for i in range(len(statuses))] == statuses


def test_hand_computed_two_bit_example() -> None:
    # Index 0 valid, 1 revoked, 2 suspended, 5 revoked: byte 0 = 0b00_10_01_00 = 0x24,
    # byte 1 = 0b00_00_01_00 = 0x04 (entries 4..7, LSB first).
    sl = StatusList(8)
    sl.set(1, STATUS_INVALID)
    sl.set(2, STATUS_SUSPENDED)
    sl.set(5, STATUS_INVALID)
    assert sl.to_bytes() == bytes([0x24, 0x04])
    assert zlib.decompress(keys.b64url_decode(sl.to_claim()["lst"])) == bytes([0x24, 0x04])
    sl.set(2, STATUS_VALID)  # suspension lifted
    assert sl.get(2) == STATUS_VALID and sl.get(1) == STATUS_INVALID


def test_set_and_get_bounds() -> None:
    sl = StatusList(10)
    assert sl.size == 10 and len(sl.to_bytes()) == 3
    with pytest.raises(IndexError):
        sl.get(10)
    with pytest.raises(ValueError):
        sl.set(0, 4)  # does not fit in 2 bits
    with pytest.raises(ValueError):
        StatusList(8, bits=3)


@pytest.mark.parametrize(
    "claim",
    [
        None,
        {"bits": 2},
        {"bits": 3, "lst": BITS2_LST},
        {"bits": True, "lst": BITS2_LST},
        {"bits": 2, "lst": "!!!"},
        {"bits": 2, "lst": keys.b64url(b"not zlib")},
        {"bits": 2, "lst": BITS2_LST[:-3]},  # truncated stream
        {"bits": 2, "lst": keys.b64url(zlib.compress(bytes(17 * 1024 * 1024)))},  # too big
    ],
)
def test_bad_status_list_claims(claim: Any) -> None:
    with pytest.raises(StatusListInvalid):
        StatusList.from_claim(claim)


def _token(issuer: Any, now: datetime, sl: StatusList | None = None, **over: Any) -> str:
    args: dict[str, Any] = {
        "uri": URI,
        "status_list": sl or StatusList(16),
        "issued_at": now,
        "expires_at": now + timedelta(days=1),
        "ttl": 3600,
    }
    args.update(over)
    return sign_status_list(issuer.private_key, issuer.kid, **args)


def test_status_list_token_round_trip(issuer: Any, now: datetime) -> None:
    sl = StatusList(16)
    sl.set(3, STATUS_SUSPENDED)
    token = _token(issuer, now, sl)
    header = jwt.get_unverified_header(token)
    assert header == {"alg": "ES256", "kid": issuer.kid, "typ": "statuslist+jwt"}
    body = json.loads(keys.b64url_decode(token.split(".")[1]))
    assert set(body) == {"sub", "iat", "exp", "ttl", "status_list"}
    got = verify_status_list_token(token, {"keys": [issuer.jwk()]}, now=now, expected_uri=URI)
    assert got.uri == URI and got.ttl == 3600 and got.issued_at == now
    assert got.status_list.get(3) == STATUS_SUSPENDED and got.status_list.get(4) == STATUS_VALID
    assert not got.is_stale(now + timedelta(seconds=3600))
    assert got.is_stale(now + timedelta(seconds=3601))


def test_status_list_token_refusals(issuer: Any, other_issuer: Any, now: datetime) -> None:
    jwks = {"keys": [issuer.jwk()]}
    token = _token(issuer, now)
    with pytest.raises(StatusListInvalid):  # another list
        verify_status_list_token(token, jwks, now=now, expected_uri=URI + "0")
    with pytest.raises(StatusListInvalid):  # expired
        verify_status_list_token(token, jwks, now=now + timedelta(days=1, seconds=30))
    with pytest.raises(StatusListInvalid):  # signed by someone else under our kid
        forged = sign_status_list(
            other_issuer.private_key,
            issuer.kid,
            uri=URI,
            status_list=StatusList(16),
            issued_at=now,
            expires_at=now + timedelta(days=1),
            ttl=60,
        )
        verify_status_list_token(forged, jwks, now=now)
    with pytest.raises(StatusListInvalid):  # a credential is not a status list
        verify_status_list_token(
            keys.sign_credential(issuer.private_key, issuer.kid, {"sub": URI}), jwks, now=now
        )
    hs = jwt.encode({"sub": URI}, "k" * 32, algorithm="HS256", headers={"typ": "statuslist+jwt"})
    with pytest.raises(StatusListInvalid):  # algorithm not allowed
        verify_status_list_token(hs, jwks, now=now)
