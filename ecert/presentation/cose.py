"""COSE_Sign1 with ES256 only, RFC 9052 (structures) and RFC 9053 (ECDSA).

We produce the tagged form ``18([protected, {}, payload, signature])`` with
``{1: -7 (ES256), 4: kid}`` in the protected header, so the key id is covered
by the signature. The signature is the raw 64-byte ``r || s`` that RFC 9053
section 2.1 requires, not the DER that ``cryptography`` produces.

Parsing accepts the untagged array, tag 18, and tag 61 (the CWT tag of
RFC 8392 section 6) wrapped around either. Every parse failure raises
``QrMalformed``; the caller decides algorithm, key and signature errors.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import cbor2
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from ecert.errors import QrMalformed

ALG_ES256 = -7
HEADER_ALG = 1
HEADER_CRIT = 2
HEADER_KID = 4
TAG_COSE_SIGN1 = 18
TAG_CWT = 61
_ES256_SIG_LEN = 64
_ES256 = ec.ECDSA(hashes.SHA256())  # stateless: one for every verification
# Protected headers already parsed, by their exact bytes (one per platform key in
# practice); bounded so that made-up headers cannot grow it.
_HEADERS: dict[bytes, tuple[object, bytes | None]] = {}
_HEADERS_MAX = 64


@dataclass(frozen=True)
class Sign1:
    protected: bytes  # the serialized protected header, signed as is
    alg: object  # whatever the protected header says; the caller allow-lists it
    kid: bytes | None
    payload: bytes
    signature: bytes


def loads_strict(data: bytes) -> Any:
    """Decode exactly one CBOR item; trailing bytes are an error (cbor2.loads ignores them)."""
    fp = io.BytesIO(data)
    try:
        item = cbor2.CBORDecoder(fp).decode()
    except Exception as exc:  # cbor2 raises several types on hostile input; all mean malformed
        raise QrMalformed("invalid CBOR") from exc
    if fp.tell() != len(data):
        raise QrMalformed("trailing bytes after the CBOR item")
    return item


def _sig_structure(protected: bytes, payload: bytes) -> bytes:
    # RFC 9052 section 4.4: Sig_structure for COSE_Sign1, empty external_aad.
    return cbor2.dumps(["Signature1", protected, b"", payload])


def sign1(private_key: ec.EllipticCurvePrivateKey, kid: bytes, payload: bytes) -> bytes:
    if not isinstance(private_key.curve, ec.SECP256R1):
        raise TypeError("ES256 needs a P-256 key")
    protected = cbor2.dumps({HEADER_ALG: ALG_ES256, HEADER_KID: kid})
    der = private_key.sign(_sig_structure(protected, payload), ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der)
    signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    return cbor2.dumps(cbor2.CBORTag(TAG_COSE_SIGN1, [protected, {}, payload, signature]))


def _bstr(data: bytes, i: int) -> tuple[bytes, int] | None:
    """The definite-length byte string at ``data[i]`` in its shortest head, or None."""
    if i >= len(data):
        return None
    head = data[i]
    if 0x40 <= head <= 0x57:
        n, start = head - 0x40, i + 1
    elif head == 0x58 and i + 1 < len(data) and data[i + 1] >= 24:
        n, start = data[i + 1], i + 2
    elif head == 0x59 and i + 2 < len(data):
        n, start = int.from_bytes(data[i + 1 : i + 3], "big"), i + 3
        if n < 256:
            return None
    else:
        return None
    end = start + n
    return (data[start:end], end) if end <= len(data) else None


def _fast_sign1(data: bytes) -> Sign1 | None:
    """Our encoder's exact form, ``18([bstr, {}, bstr, bstr])`` with shortest heads and
    nothing after it, read without the general decoder; None for anything else (which
    then goes through ``parse_sign1``'s general path, with the same result)."""
    if data[:2] != b"\xd2\x84":
        return None
    protected = _bstr(data, 2)
    if protected is None or protected[1] >= len(data) or data[protected[1]] != 0xA0:
        return None
    payload = _bstr(data, protected[1] + 1)
    if payload is None:
        return None
    signature = _bstr(data, payload[1])
    if signature is None or signature[1] != len(data):
        return None
    header = _HEADERS.get(protected[0])
    if header is None:
        header = _protected_header(protected[0], {})
        if len(_HEADERS) < _HEADERS_MAX:
            _HEADERS[protected[0]] = header
    alg, kid = header
    return Sign1(protected[0], alg, kid, payload[0], signature[0])


def _protected_header(protected: bytes, unprotected: Mapping[Any, Any]) -> tuple[object, Any]:
    header = loads_strict(protected) if protected else {}
    if not isinstance(header, Mapping):
        raise QrMalformed("protected header is not a map")
    if HEADER_CRIT in header or HEADER_CRIT in unprotected:
        # We understand no critical extension, so RFC 9052 section 3.1 says reject.
        raise QrMalformed("critical header parameters are not supported")
    kid = header.get(HEADER_KID, unprotected.get(HEADER_KID))
    if kid is not None and not isinstance(kid, bytes):
        raise QrMalformed("kid must be a byte string")
    # alg only counts when protected: an unprotected alg could be swapped by anyone.
    return header.get(HEADER_ALG), kid


def parse_sign1(data: bytes) -> Sign1:
    return _fast_sign1(data) or _general_sign1(data)


def _general_sign1(data: bytes) -> Sign1:
    item = loads_strict(data)
    if isinstance(item, cbor2.CBORTag) and item.tag == TAG_CWT:
        item = item.value
    if isinstance(item, cbor2.CBORTag) and item.tag == TAG_COSE_SIGN1:
        item = item.value
    # cbor2 decodes a tagged array as a tuple of frozen items, an untagged one as a list.
    if not isinstance(item, (list, tuple)) or len(item) != 4:
        raise QrMalformed("not a COSE_Sign1 array")
    protected, unprotected, payload, signature = item
    if not isinstance(protected, bytes) or not isinstance(unprotected, Mapping):
        raise QrMalformed("bad COSE headers")
    if not isinstance(payload, bytes) or not isinstance(signature, bytes):
        raise QrMalformed("COSE payload and signature must be byte strings")
    alg, kid = _protected_header(protected, unprotected)
    return Sign1(protected, alg, kid, payload, signature)


def verify_es256(msg: Sign1, public_key: ec.EllipticCurvePublicKey) -> bool:
    if len(msg.signature) != _ES256_SIG_LEN:
        return False
    r = int.from_bytes(msg.signature[:32], "big")
    s = int.from_bytes(msg.signature[32:], "big")
    try:
        public_key.verify(
            encode_dss_signature(r, s),
            _sig_structure(msg.protected, msg.payload),
            _ES256,
        )
    except InvalidSignature:
        return False
    return True
