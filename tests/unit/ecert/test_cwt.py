"""The QR presentation (CWT in COSE_Sign1, Base45): round trip, wire form, every refusal."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import cbor2
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from ecert import errors
from ecert.presentation import base45, cwt

STATUS = cwt.StatusRef(123456, "https://sz.gov.cn/sl/1")


def present(who: Any, now: datetime, **over: Any) -> str:
    args: dict[str, Any] = {
        "cert_type": "eid",
        "masked_name": "张*",
        "masked_id": "4403**********1234",
        "issued_at": now,
        "expires_at": now + timedelta(seconds=60),
        "status": STATUS,
    }
    args.update(over)
    return cwt.encode_presentation(who.private_key, who.kid_bytes, **args)


def forge(
    key: ec.EllipticCurvePrivateKey,
    payload: Any,
    *,
    protected: dict[int, Any] | None = None,
    unprotected: dict[int, Any] | None = None,
    kid: bytes = b"",
    tag: int | None = 18,
    signature: bytes | None = None,
) -> str:
    """An independent COSE_Sign1 signer, to build codes our encoder would never make."""
    header = protected if protected is not None else {1: -7, 4: kid}
    prot = cbor2.dumps(header)
    body = payload if isinstance(payload, bytes) else cbor2.dumps(payload)
    if signature is None:
        to_sign = cbor2.dumps(["Signature1", prot, b"", body])
        r, s = decode_dss_signature(key.sign(to_sign, ec.ECDSA(hashes.SHA256())))
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    msg: Any = [prot, unprotected or {}, body, signature]
    if tag is not None:
        msg = cbor2.CBORTag(tag, msg)
    return cwt.PREFIX + base45.encode(cbor2.dumps(msg))


def claims(now: datetime) -> dict[int, Any]:
    c: dict[int, Any] = {
        4: int(now.timestamp()) + 60,
        6: int(now.timestamp()),
        7: b"\x01" * 16,
        65535: {"status_list": {"idx": 7, "uri": "https://sz.gov.cn/sl/1"}},
        -65537: ["eid", "张*", "4403**********1234"],
    }
    return c


def test_round_trip_gives_back_every_claim(issuer: Any, now: datetime) -> None:
    text = present(
        issuer,
        now,
        extra={"dob": "1990-**-**"},
        issuer="https://ecert.sz.gov.cn",
        subject="crt_01JD3X8Q6T2M8V5N4K7P9R0S1W",
    )
    p = cwt.decode_and_verify(text, issuer.lookup(), now)
    assert (p.cert_type, p.masked_name, p.masked_id) == ("eid", "张*", "4403**********1234")
    assert p.extra == {"dob": "1990-**-**"}
    assert p.status == STATUS
    assert (p.issuer, p.subject) == ("https://ecert.sz.gov.cn", "crt_01JD3X8Q6T2M8V5N4K7P9R0S1W")
    assert p.issued_at == now and p.expires_at == now + timedelta(seconds=60)
    assert p.kid == issuer.kid_bytes and len(p.kid) == 8
    assert len(p.cti) == 16


def test_each_presentation_has_a_fresh_cti(issuer: Any, now: datetime) -> None:
    a = cwt.decode_and_verify(present(issuer, now), issuer.lookup(), now)
    b = cwt.decode_and_verify(present(issuer, now), issuer.lookup(), now)
    assert a.cti != b.cti


def test_minimal_presentation_without_optional_claims(issuer: Any, now: datetime) -> None:
    p = cwt.decode_and_verify(present(issuer, now, status=None), issuer.lookup(), now)
    assert p.status is None and p.issuer is None and p.subject is None and p.extra == {}


def test_wire_form_is_tagged_cose_sign1_with_raw_es256(issuer: Any, now: datetime) -> None:
    text = present(issuer, now)
    assert text.startswith("SZ1:")
    item = cbor2.loads(base45.decode(text[4:]))
    assert isinstance(item, cbor2.CBORTag) and item.tag == 18
    protected, unprotected, payload, signature = item.value
    assert cbor2.loads(protected) == {1: -7, 4: issuer.kid_bytes}
    assert dict(unprotected) == {}
    assert len(signature) == 64  # r || s, not DER
    to_sign = cbor2.dumps(["Signature1", protected, b"", payload])
    der = encode_dss_signature(
        int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    )
    issuer.public_key.verify(der, to_sign, ec.ECDSA(hashes.SHA256()))
    body = cbor2.loads(payload)
    assert body[65535] == {"status_list": {"idx": 123456, "uri": "https://sz.gov.cn/sl/1"}}
    assert body[-65537] == ["eid", "张*", "4403**********1234"]


@pytest.mark.parametrize("tag", [None, 18])
def test_untagged_and_cwt_tagged_forms_are_accepted(issuer: Any, now: datetime, tag: Any) -> None:
    plain = forge(issuer.private_key, claims(now), kid=issuer.kid_bytes, tag=tag)
    assert cwt.decode_and_verify(plain, issuer.lookup(), now).cert_type == "eid"
    item = cbor2.loads(base45.decode(plain[4:]))
    wrapped = cwt.PREFIX + base45.encode(cbor2.dumps(cbor2.CBORTag(61, item)))
    assert cwt.decode_and_verify(wrapped, issuer.lookup(), now).cert_type == "eid"


def test_kid_in_unprotected_header_is_accepted(issuer: Any, now: datetime) -> None:
    text = forge(
        issuer.private_key, claims(now), protected={1: -7}, unprotected={4: issuer.kid_bytes}
    )
    assert cwt.decode_and_verify(text, issuer.lookup(), now).kid == issuer.kid_bytes


def test_trailing_line_end_from_a_scanner_is_tolerated(issuer: Any, now: datetime) -> None:
    assert cwt.decode_and_verify(present(issuer, now) + "\r\n", issuer.lookup(), now)


@pytest.mark.parametrize("text", ["", "HC1:NCFOXN", "sz1:BB8", "SZ1", " SZ1:BB8", "https://x"])
def test_bad_prefix(issuer: Any, now: datetime, text: str) -> None:
    with pytest.raises(errors.QrBadPrefix) as err:
        cwt.decode_and_verify(text, issuer.lookup(), now)
    assert err.value.code == "qr-bad-prefix"


@pytest.mark.parametrize("body", ["abc", "GGW", "A", "BB8A", "BB#", "X" * 5000])
def test_bad_base45(issuer: Any, now: datetime, body: str) -> None:
    with pytest.raises(errors.QrBadEncoding) as err:
        cwt.decode_and_verify("SZ1:" + body, issuer.lookup(), now)
    assert err.value.code == "qr-bad-encoding"


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\xff",  # a lone break
        b"\x18",  # truncated integer
        cbor2.dumps([b"", {}, b""]),  # three items
        cbor2.dumps([b"", {}, b"", b""]) + b"\x00",  # trailing bytes
        cbor2.dumps(cbor2.CBORTag(98, [b"", {}, b"", b""])),  # COSE_Sign, not Sign1
        cbor2.dumps([cbor2.dumps([1]), {}, b"", b""]),  # protected is not a map
        cbor2.dumps([b"\xa1\x01", {}, b"", b""]),  # protected is truncated CBOR
        cbor2.dumps(["x", {}, b"", b""]),
        cbor2.dumps([cbor2.dumps({1: -7, 4: "text kid"}), {}, b"", b""]),
        cbor2.dumps([cbor2.dumps({1: -7, 2: [99]}), {}, b"", b""]),  # crit
        b"\x81" * 2800,  # deep nesting, within the QR length cap
    ],
)
def test_malformed_cose(issuer: Any, now: datetime, raw: bytes) -> None:
    with pytest.raises(errors.QrMalformed) as err:
        cwt.decode_and_verify("SZ1:" + base45.encode(raw), issuer.lookup(), now)
    assert err.value.code == "qr-malformed"


@pytest.mark.parametrize(
    "over",
    [
        {4: None},  # no exp
        {6: None},  # no iat
        {4: "tomorrow"},
        {6: True},
        {4: 10**30},
        {4: -5},
        {7: None},
        {7: "not bytes"},
        {7: b"short"},
        {-65537: None},
        {-65537: ["eid", "张*"]},
        {-65537: ["eid", "张*", 1234]},
        {-65537: ["eid", "张*", "id", {"k": 1}]},
        {-65537: {"t": "eid"}},
        {65535: {"other": {}}},
        {65535: {"status_list": {"idx": -1, "uri": "https://x"}}},
        {65535: {"status_list": {"idx": 1}}},
        {1: 42},
    ],
)
def test_signed_but_malformed_claims(issuer: Any, now: datetime, over: dict[int, Any]) -> None:
    text = forge(
        issuer.private_key,
        {k: v for k, v in (claims(now) | over).items() if v is not None},
        kid=issuer.kid_bytes,
    )
    with pytest.raises(errors.QrMalformed):
        cwt.decode_and_verify(text, issuer.lookup(), now)


@pytest.mark.parametrize("payload", [cbor2.dumps([1, 2]), b"\xff", cbor2.dumps("text")])
def test_signed_payload_that_is_not_a_claims_map(
    issuer: Any, now: datetime, payload: bytes
) -> None:
    with pytest.raises(errors.QrMalformed):
        cwt.decode_and_verify(
            forge(issuer.private_key, payload, kid=issuer.kid_bytes), issuer.lookup(), now
        )


@pytest.mark.parametrize(
    ("protected", "unprotected"),
    [
        ({1: -35}, {}),  # ES384
        ({1: -8}, {}),  # EdDSA
        ({1: 5}, {}),  # HMAC 256/256
        ({1: "ES256"}, {}),
        ({1: -7.0}, {}),  # a float is not the integer label
        ({}, {1: -7}),  # alg unprotected only
        ({}, {}),
    ],
)
def test_algorithm_not_allowed(
    issuer: Any, now: datetime, protected: dict[int, Any], unprotected: dict[int, Any]
) -> None:
    text = forge(
        issuer.private_key,
        claims(now),
        protected={**protected, 4: issuer.kid_bytes},
        unprotected=unprotected,
    )
    with pytest.raises(errors.QrAlgNotAllowed) as err:
        cwt.decode_and_verify(text, issuer.lookup(), now)
    assert err.value.code == "qr-alg-not-allowed"


def test_unknown_kid(issuer: Any, other_issuer: Any, now: datetime) -> None:
    with pytest.raises(errors.QrUnknownKey) as err:
        cwt.decode_and_verify(present(other_issuer, now), issuer.lookup(), now)
    assert err.value.code == "qr-unknown-key"


def test_missing_kid(issuer: Any, now: datetime) -> None:
    text = forge(issuer.private_key, claims(now), protected={1: -7})
    with pytest.raises(errors.QrUnknownKey):
        cwt.decode_and_verify(text, issuer.lookup(), now)


def test_key_on_another_curve_is_not_trusted(issuer: Any, now: datetime) -> None:
    p384 = ec.generate_private_key(ec.SECP384R1()).public_key()
    with pytest.raises(errors.QrUnknownKey):
        cwt.decode_and_verify(present(issuer, now), lambda kid: p384, now)


def test_wrong_key_under_a_trusted_kid(issuer: Any, other_issuer: Any, now: datetime) -> None:
    # Someone else's key signs, claiming our issuer's kid.
    text = forge(other_issuer.private_key, claims(now), kid=issuer.kid_bytes)
    with pytest.raises(errors.QrBadSignature) as err:
        cwt.decode_and_verify(text, issuer.lookup(), now)
    assert err.value.code == "qr-bad-signature"


def test_tampered_payload(issuer: Any, now: datetime) -> None:
    item = cbor2.loads(base45.decode(present(issuer, now)[4:]))
    protected, unprotected, payload, signature = item.value
    body = cbor2.loads(payload)
    body[-65537] = ["eid", "李*", "4403**********9999"]  # another person's details
    forged = cbor2.CBORTag(18, [protected, unprotected, cbor2.dumps(body), signature])
    with pytest.raises(errors.QrBadSignature):
        cwt.decode_and_verify("SZ1:" + base45.encode(cbor2.dumps(forged)), issuer.lookup(), now)


@pytest.mark.parametrize("signature", [b"", b"\x00" * 64, b"\xff" * 64, b"\x01" * 63, b"\x01" * 72])
def test_bad_signature_values(issuer: Any, now: datetime, signature: bytes) -> None:
    text = forge(issuer.private_key, claims(now), kid=issuer.kid_bytes, signature=signature)
    with pytest.raises(errors.QrBadSignature):
        cwt.decode_and_verify(text, issuer.lookup(), now)


def test_expiry_window_with_skew(issuer: Any, now: datetime) -> None:
    text = present(issuer, now)  # exp = now + 60
    assert cwt.decode_and_verify(text, issuer.lookup(), now + timedelta(seconds=89))
    with pytest.raises(errors.QrExpired) as err:
        cwt.decode_and_verify(text, issuer.lookup(), now + timedelta(seconds=90))
    assert err.value.code == "qr-expired" and err.value.kind == "gone"
    with pytest.raises(errors.QrExpired):
        cwt.decode_and_verify(text, issuer.lookup(), now + timedelta(seconds=61), skew=0)


def test_issued_in_the_future_with_skew(issuer: Any, now: datetime) -> None:
    text = present(issuer, now + timedelta(seconds=30), expires_at=now + timedelta(seconds=90))
    assert cwt.decode_and_verify(text, issuer.lookup(), now)
    late = present(issuer, now + timedelta(seconds=31), expires_at=now + timedelta(seconds=90))
    with pytest.raises(errors.QrNotYetValid) as err:
        cwt.decode_and_verify(late, issuer.lookup(), now)
    assert err.value.code == "qr-not-yet-valid"


def test_not_before_is_honoured(issuer: Any, now: datetime) -> None:
    nbf = int(now.timestamp()) + 45
    text = forge(issuer.private_key, claims(now) | {5: nbf}, kid=issuer.kid_bytes)
    with pytest.raises(errors.QrNotYetValid):
        cwt.decode_and_verify(text, issuer.lookup(), now)


def test_every_code_is_distinct_and_stable() -> None:
    expected = {
        errors.QrBadPrefix: "qr-bad-prefix",
        errors.QrBadEncoding: "qr-bad-encoding",
        errors.QrMalformed: "qr-malformed",
        errors.QrAlgNotAllowed: "qr-alg-not-allowed",
        errors.QrUnknownKey: "qr-unknown-key",
        errors.QrBadSignature: "qr-bad-signature",
        errors.QrExpired: "qr-expired",
        errors.QrNotYetValid: "qr-not-yet-valid",
        errors.QrReplayed: "qr-replayed",
        errors.CertificateRevoked: "certificate-revoked",
        errors.CertificateSuspended: "certificate-suspended",
        errors.CertificateExpired: "certificate-expired",
    }
    assert {cls: cls.code for cls in expected} == expected


def test_encoder_refuses_naive_or_inverted_times(issuer: Any, now: datetime) -> None:
    with pytest.raises(ValueError):
        present(issuer, now.replace(tzinfo=None))
    with pytest.raises(ValueError):
        present(issuer, now, expires_at=now)


def test_signature_twin_verifies_so_replay_must_key_on_cti(issuer: Any, now: datetime) -> None:
    # ECDSA (r, s) and (r, n - s) both verify: one presentation has two valid QR texts.
    # The online replay check must therefore key on cti, never on the text or its hash.
    n = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551  # P-256 order
    text = present(issuer, now)
    protected, unprotected, payload, signature = cbor2.loads(base45.decode(text[4:])).value
    s = int.from_bytes(signature[32:], "big")
    twin_sig = signature[:32] + (n - s).to_bytes(32, "big")
    twin_msg = cbor2.CBORTag(18, [protected, unprotected, payload, twin_sig])
    twin = "SZ1:" + base45.encode(cbor2.dumps(twin_msg))
    assert twin != text
    a = cwt.decode_and_verify(text, issuer.lookup(), now)
    b = cwt.decode_and_verify(twin, issuer.lookup(), now)
    assert a.cti == b.cti


@pytest.mark.parametrize(
    "edit",
    [
        lambda raw: raw,  # our own encoding: the fast path
        lambda raw: raw + b"\x00",  # trailing byte
        lambda raw: raw[:-1],  # truncated signature
        lambda raw: raw[:2] + b"\x58\x0d" + raw[3:],  # a protected header's length padded
        lambda raw: b"\x84" + raw[2:],  # untagged
        lambda raw: raw[:1] + b"\x9f" + raw[2:] + b"\xff",  # indefinite-length array
    ],
)
def test_fast_envelope_reader_agrees_with_the_general_decoder(
    issuer: Any, now: datetime, edit: Any
) -> None:
    from ecert.presentation import cose

    ours = base45.decode(present(issuer, now)[len(cwt.PREFIX) :])
    raw = edit(ours)
    assert (cose._fast_sign1(raw) is not None) == (raw == ours)  # only our form is fast

    def outcome(parse: Any) -> Any:
        try:
            return parse(raw)
        except errors.QrMalformed as exc:
            return type(exc)

    assert outcome(cose.parse_sign1) == outcome(cose._general_sign1)
