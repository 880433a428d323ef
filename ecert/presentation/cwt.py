"""The e-certificate QR presentation: a CBOR Web Token (RFC 8392) in COSE_Sign1.

Wire form: ``"SZ1:" + Base45(COSE_Sign1)`` (RFC 9285 Base45; no compression,
since a signed token of random nonces and signatures does not shrink). The
COSE message is produced tagged 18 and without the CWT tag 61; decoding also
accepts untagged and 61-wrapped messages.

Claims (integer keys):

====== ========================= ===============================================
key    name                      value
====== ========================= ===============================================
1      iss (optional)            text, the issuing unit
2      sub (optional)            text, e.g. the certificate id ``crt_...``
4      exp                       NumericDate (int seconds)
5      nbf (optional, on read)   NumericDate
6      iat                       NumericDate
7      cti                       16 random bytes, the one-time nonce
65535  status (optional)         ``{"status_list": {"idx": int, "uri": text}}``,
                                 draft-ietf-oauth-status-list "Referenced
                                 Token in CWT format", key 65535 as assigned
                                 there
-65537 certificate               ``[type, masked_name, masked_id, extra?]``
====== ========================= ===============================================

The certificate claim is positional, not a map, to fit a QR code of version
10 at error correction M (311 alphanumeric characters = at most 204 COSE
bytes): ``type`` is the certificate type code, ``masked_name`` and
``masked_id`` are the already-masked display values counter staff see, and
the optional fourth item is a map text -> text of further masked display
claims (left out when empty). Keys of a map would cost 6 bytes more, and a
second private claim 5 more. Its key is the first of the CWT registry's
Private Use range (integers below -65536, RFC 8392 section 9.1), so it can
never clash with a registered claim.

Size budget (measured in the tests): with an 8-byte kid, a 16-byte cti and
a status ``idx`` from 65536 to 2**32-1, the COSE message takes 156 bytes plus
the UTF-8 length of the status URI, type, name and ID (each under 24 bytes).
Example that fits version 10: type ``eid``, name ``张*``, ID
``4403**********1234``, URI ``https://sz.gov.cn/sl/1``: 203 bytes, 309
characters. A 3-character masked name or a longer URI tips it into version
11, so keep status URIs short.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeGuard

import cbor2
from cryptography.hazmat.primitives.asymmetric import ec

from ecert.errors import (
    PresentationError,
    QrAlgNotAllowed,
    QrBadEncoding,
    QrBadPrefix,
    QrBadSignature,
    QrExpired,
    QrMalformed,
    QrNotYetValid,
    QrUnknownKey,
)
from ecert.presentation import base45, cose

PREFIX = "SZ1:"
# A version-40 QR holds 4,296 alphanumeric characters; anything longer is not from a QR.
MAX_TEXT_LENGTH = 4296
DEFAULT_SKEW_SECONDS = 30

CLAIM_ISS = 1
CLAIM_SUB = 2
CLAIM_EXP = 4
CLAIM_NBF = 5
CLAIM_IAT = 6
CLAIM_CTI = 7
CLAIM_STATUS = 65535
CLAIM_CERTIFICATE = -65537
CTI_LENGTH = 16
_MAX_NUMERIC_DATE = 253402300799  # 9999-12-31T23:59:59Z, keeps datetime in range

_TYPE_CODE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
KeyLookup = Callable[[bytes], ec.EllipticCurvePublicKey | None]


@dataclass(frozen=True)
class StatusRef:
    """Where the certificate's status lives: index ``idx`` of the list at ``uri``."""

    idx: int
    uri: str


@dataclass(frozen=True)
class Presentation:
    cert_type: str
    masked_name: str
    masked_id: str
    issued_at: datetime
    expires_at: datetime
    cti: bytes
    kid: bytes
    status: StatusRef | None = None
    issuer: str | None = None
    subject: str | None = None
    not_before: datetime | None = None
    extra: Mapping[str, str] = field(default_factory=dict)


def encode_presentation(private_key: ec.EllipticCurvePrivateKey, kid: bytes, **fields: Any) -> str:
    """Sign a presentation and return the QR text ``SZ1:<Base45>``; ``fields`` are
    ``sign_presentation``'s keyword arguments."""
    return to_text(sign_presentation(private_key, kid, **fields))


def to_text(message: bytes) -> str:
    """The QR text of a signed COSE_Sign1 message."""
    return PREFIX + base45.encode(message)


def sign_presentation(
    private_key: ec.EllipticCurvePrivateKey,
    kid: bytes,
    *,
    cert_type: str,
    masked_name: str,
    masked_id: str,
    issued_at: datetime,
    expires_at: datetime,
    status: StatusRef | None = None,
    extra: Mapping[str, str] | None = None,
    issuer: str | None = None,
    subject: str | None = None,
    cti: bytes | None = None,
) -> bytes:
    """Sign a presentation; the COSE_Sign1 bytes (``to_text`` makes the QR text)."""
    if not kid:
        raise ValueError("kid must not be empty")
    if issued_at.tzinfo is None or expires_at.tzinfo is None:
        raise ValueError("times must be timezone-aware")
    if expires_at <= issued_at:
        raise ValueError("expires_at must be after issued_at")
    claims: dict[int, Any] = {}
    if issuer is not None:
        claims[CLAIM_ISS] = issuer
    if subject is not None:
        claims[CLAIM_SUB] = subject
    claims[CLAIM_EXP] = int(expires_at.timestamp())
    claims[CLAIM_IAT] = int(issued_at.timestamp())
    claims[CLAIM_CTI] = cti if cti is not None else os.urandom(CTI_LENGTH)
    if status is not None:
        claims[CLAIM_STATUS] = {"status_list": {"idx": status.idx, "uri": status.uri}}
    certificate: list[Any] = [cert_type, masked_name, masked_id]
    if extra:
        certificate.append(dict(extra))
    claims[CLAIM_CERTIFICATE] = certificate
    payload = cbor2.dumps(claims, canonical=True)
    return cose.sign1(private_key, kid, payload)


def decode_and_verify(
    text: str,
    key_lookup: KeyLookup,
    now: datetime,
    skew: int = DEFAULT_SKEW_SECONDS,
) -> Presentation:
    """Check a scanned QR text end to end; raise a ``PresentationError`` on any fault.

    Order matters: nothing in the payload is trusted before the signature is (a
    text with a bad signature is ``QrBadSignature``, whatever else is wrong in it).
    """
    unverified = decode_unverified(text, key_lookup, now, skew)
    if not unverified.signature_ok():
        raise QrBadSignature()
    return unverified.presentation


@dataclass(frozen=True)
class Unverified:
    """A presentation that passed every check but the signature's, which is left to
    the caller (``signature_ok``): a server that remembers a MAC of the ``raw`` bytes of each
    message it signed can recognise its own, which costs less than ECDSA."""

    presentation: Presentation
    message: cose.Sign1
    key: ec.EllipticCurvePublicKey
    raw: bytes  # the COSE_Sign1 bytes

    def signature_ok(self) -> bool:
        return cose.verify_es256(self.message, self.key)


def decode_unverified(
    text: str,
    key_lookup: KeyLookup,
    now: datetime,
    skew: int = DEFAULT_SKEW_SECONDS,
) -> Unverified:
    """``decode_and_verify`` without the signature check when all else passes. Any
    error is the one ``decode_and_verify`` raises: where the claims or the time
    window fail, the signature is checked first and a bad one wins."""
    msg, raw = _unwrap(text)
    if type(msg.alg) is not int or msg.alg != cose.ALG_ES256:
        # type() check: CBOR -7.0 or True must not pass for the integer label.
        raise QrAlgNotAllowed("only ES256 is allowed")
    if msg.kid is None:
        raise QrUnknownKey("the presentation names no key")
    public_key = key_lookup(msg.kid)
    if public_key is None or not isinstance(public_key.curve, ec.SECP256R1):
        raise QrUnknownKey("no trusted ES256 key has this kid")
    try:
        # Read before the signature is checked: any fault here is checked against the
        # signature before it is reported, so a forged payload never gets further.
        presentation = _parse_claims(cose.loads_strict(msg.payload), msg.kid)
        _check_window(presentation, now, skew)
    except Exception as exc:
        if not cose.verify_es256(msg, public_key):
            raise QrBadSignature() from None
        if isinstance(exc, PresentationError):
            raise
        raise QrMalformed("the claims could not be read") from exc
    return Unverified(presentation, msg, public_key, raw)


def parse_unverified(text: str) -> cose.Sign1:
    """Decode the envelope without verifying (for diagnostics and key routing)."""
    return _unwrap(text)[0]


def _unwrap(text: str) -> tuple[cose.Sign1, bytes]:
    if not isinstance(text, str) or not text.startswith(PREFIX):
        raise QrBadPrefix()
    # Scanners in keyboard-wedge mode often append a line end; space is Base45, so keep it.
    body = text[len(PREFIX) :].rstrip("\r\n")
    if len(body) > MAX_TEXT_LENGTH:
        raise QrBadEncoding("the text is too long for a QR code")
    try:
        raw = base45.decode(body)
    except base45.Base45Error as exc:
        raise QrBadEncoding(str(exc)) from None
    return cose.parse_sign1(raw), raw


def _numeric_date(claims: Mapping[Any, Any], key: int, *, required: bool) -> datetime | None:
    value = claims.get(key)
    if value is None and not required:
        return None
    if type(value) is not int or not 0 <= value <= _MAX_NUMERIC_DATE:
        raise QrMalformed(f"claim {key} must be an integer NumericDate")
    return datetime.fromtimestamp(value, UTC)


def _text(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise QrMalformed(f"{what} must be text")
    return value


def _is_map(value: object) -> TypeGuard[Mapping[Any, Any]]:
    # ``type is dict`` first: what cbor2 returns, without the slower ABC check.
    return type(value) is dict or isinstance(value, Mapping)


def _parse_status(value: object) -> StatusRef:
    ref = value.get("status_list") if _is_map(value) else None
    if not _is_map(ref):
        raise QrMalformed("status claim has no status_list reference")
    idx, uri = ref.get("idx"), ref.get("uri")
    if type(idx) is not int or idx < 0:
        raise QrMalformed("status_list idx must be a non-negative integer")
    return StatusRef(idx, _text(uri, "status_list uri"))


def _parse_certificate(value: object) -> tuple[str, str, str, dict[str, str]]:
    if not isinstance(value, (list, tuple)) or len(value) not in (3, 4):
        raise QrMalformed("the certificate claim must be [type, name, id, extra?]")
    if not isinstance(value[0], str) or not _TYPE_CODE.fullmatch(value[0]):
        raise QrMalformed("the certificate type is not a type code")
    extra = value[3] if len(value) == 4 else {}
    if not _is_map(extra) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in extra.items()
    ):
        raise QrMalformed("extra display claims must map text to text")
    return (
        _text(value[0], "certificate type"),
        _text(value[1], "masked name"),
        _text(value[2], "masked id"),
        dict(extra),
    )


def _parse_claims(claims: object, kid: bytes) -> Presentation:
    if not _is_map(claims):
        raise QrMalformed("the CWT claims set is not a map")
    cert_type, masked_name, masked_id, extra = _parse_certificate(claims.get(CLAIM_CERTIFICATE))
    cti = claims.get(CLAIM_CTI)
    if not isinstance(cti, bytes) or not 8 <= len(cti) <= 64:
        raise QrMalformed("cti must be 8 to 64 bytes")
    issued_at = _numeric_date(claims, CLAIM_IAT, required=True)
    expires_at = _numeric_date(claims, CLAIM_EXP, required=True)
    assert issued_at is not None and expires_at is not None  # required=True guarantees it
    status = claims.get(CLAIM_STATUS)
    issuer, subject = claims.get(CLAIM_ISS), claims.get(CLAIM_SUB)
    return Presentation(
        cert_type=cert_type,
        masked_name=masked_name,
        masked_id=masked_id,
        issued_at=issued_at,
        expires_at=expires_at,
        cti=cti,
        kid=kid,
        status=None if status is None else _parse_status(status),
        issuer=None if issuer is None else _text(issuer, "iss"),
        subject=None if subject is None else _text(subject, "sub"),
        not_before=_numeric_date(claims, CLAIM_NBF, required=False),
        extra=extra,
    )


def _check_window(p: Presentation, now: datetime, skew: int) -> None:
    t = now.timestamp()
    if t >= p.expires_at.timestamp() + skew:
        raise QrExpired()
    if p.issued_at.timestamp() > t + skew:
        raise QrNotYetValid("issued in the future")
    if p.not_before is not None and p.not_before.timestamp() > t + skew:
        raise QrNotYetValid()
