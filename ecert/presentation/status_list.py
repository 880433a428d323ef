"""IETF Token Status List (draft-ietf-oauth-status-list), JSON/JWT form.

A status list is a byte array holding one ``bits``-wide status per certificate,
the entry for index 0 in the least significant bits of byte 0. We use
``bits = 2``: 0 VALID, 1 INVALID (revoked, irreversible), 2 SUSPENDED
(reversible); 3 is unused and read as "not valid". On the wire the array is
DEFLATE-compressed with a zlib header (RFC 1950, level 9) and base64url
encoded without padding: ``{"bits": 2, "lst": "eNo..."}``.

The Status List Token is a JWT with header ``typ: statuslist+jwt`` and claims
``sub`` (the list's URI, equal to the ``uri`` in the referenced token), ``iat``,
``exp``, ``ttl`` (seconds a verifier may cache it) and ``status_list``,
signed ES256; verification allow-lists ES256 only.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec

from ecert.errors import StatusListInvalid
from ecert.presentation.keys import b64url, b64url_decode, verify_jws

STATUS_VALID = 0
STATUS_INVALID = 1
STATUS_SUSPENDED = 2
TYP = "statuslist+jwt"
ALLOWED_BITS = (1, 2, 4, 8)
# 16 MiB of statuses (64 Mi entries at 2 bits) caps a hostile "zip bomb" list.
MAX_LIST_BYTES = 16 * 1024 * 1024
_MAX_NUMERIC_DATE = 253402300799  # 9999-12-31T23:59:59Z


def _is_date(value: object) -> bool:
    return type(value) is int and 0 <= value <= _MAX_NUMERIC_DATE


class StatusList:
    """A fixed-size array of small status values, packed LSB first."""

    def __init__(self, size: int, bits: int = 2, *, data: bytes | None = None) -> None:
        if bits not in ALLOWED_BITS:
            raise ValueError("bits must be 1, 2, 4 or 8")
        if size < 0:
            raise ValueError("size must not be negative")
        per_byte = 8 // bits
        nbytes = -(-size // per_byte)
        if data is not None and len(data) != nbytes:
            raise ValueError("data length does not match size")
        self.bits = bits
        self.size = size
        self._data = bytearray(data) if data is not None else bytearray(nbytes)

    def _locate(self, idx: int) -> tuple[int, int]:
        if not 0 <= idx < self.size:
            raise IndexError(f"status index {idx} outside 0..{self.size - 1}")
        per_byte = 8 // self.bits
        return idx // per_byte, (idx % per_byte) * self.bits

    def get(self, idx: int) -> int:
        byte, shift = self._locate(idx)
        return (self._data[byte] >> shift) & ((1 << self.bits) - 1)

    def set(self, idx: int, value: int) -> None:
        if not 0 <= value < (1 << self.bits):
            raise ValueError(f"status {value} does not fit in {self.bits} bits")
        byte, shift = self._locate(idx)
        mask = ((1 << self.bits) - 1) << shift
        self._data[byte] = (self._data[byte] & ~mask) | (value << shift)

    def to_bytes(self) -> bytes:
        return bytes(self._data)

    def to_claim(self) -> dict[str, Any]:
        return {"bits": self.bits, "lst": b64url(zlib.compress(bytes(self._data), 9))}

    @classmethod
    def from_claim(cls, claim: object) -> StatusList:
        """Parse ``{"bits", "lst"}``; the size is every entry the bytes hold."""
        if not isinstance(claim, Mapping):
            raise StatusListInvalid("status_list must be an object")
        bits, lst = claim.get("bits"), claim.get("lst")
        if type(bits) is not int or bits not in ALLOWED_BITS or not isinstance(lst, str):
            raise StatusListInvalid("status_list needs bits in 1, 2, 4, 8 and a lst string")
        try:
            inflater = zlib.decompressobj()
            data = inflater.decompress(b64url_decode(lst), MAX_LIST_BYTES)
            if inflater.unconsumed_tail or not inflater.eof:
                raise StatusListInvalid("status list is truncated or too large")
        except (ValueError, zlib.error) as exc:
            raise StatusListInvalid("lst is not base64url zlib data") from exc
        return cls(len(data) * 8 // bits, bits, data=data)


@dataclass(frozen=True)
class StatusListToken:
    uri: str
    issued_at: datetime
    expires_at: datetime | None
    ttl: int | None
    status_list: StatusList

    def is_stale(self, now: datetime) -> bool:
        """True once ``ttl`` has run out: the verifier should fetch a fresh copy."""
        return self.ttl is not None and now.timestamp() > self.issued_at.timestamp() + self.ttl


def sign_status_list(
    private_key: ec.EllipticCurvePrivateKey,
    kid: str,
    *,
    uri: str,
    status_list: StatusList,
    issued_at: datetime,
    expires_at: datetime,
    ttl: int,
) -> str:
    claims = {
        "sub": uri,
        "iat": int(issued_at.timestamp()),
        "exp": int(expires_at.timestamp()),
        "ttl": ttl,
        "status_list": status_list.to_claim(),
    }
    return jwt.encode(claims, private_key, algorithm="ES256", headers={"kid": kid, "typ": TYP})


def verify_status_list_token(
    token: str,
    jwks: Mapping[str, Any],
    *,
    now: datetime,
    expected_uri: str | None = None,
    leeway: int = 30,
) -> StatusListToken:
    """Verify signature (ES256 only), ``typ``, time window and, if given, the URI."""
    claims = verify_jws(token, jwks, TYP, now, leeway, StatusListInvalid)
    uri, iat, exp, ttl = claims.get("sub"), claims.get("iat"), claims.get("exp"), claims.get("ttl")
    if not isinstance(uri, str) or (expected_uri is not None and uri != expected_uri):
        raise StatusListInvalid("the status list token is for another URI")
    if not isinstance(iat, int) or not _is_date(iat) or (exp is not None and not _is_date(exp)):
        raise StatusListInvalid("iat (and exp) must be integer NumericDates")
    if ttl is not None and (type(ttl) is not int or ttl < 0):
        raise StatusListInvalid("ttl must be a non-negative integer")
    return StatusListToken(
        uri=uri,
        issued_at=datetime.fromtimestamp(iat, UTC),
        expires_at=None if exp is None else datetime.fromtimestamp(exp, UTC),
        ttl=ttl,
        status_list=StatusList.from_claim(claims.get("status_list")),
    )
