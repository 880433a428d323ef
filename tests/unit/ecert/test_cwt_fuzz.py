"""Hostile input never escapes as anything but a PresentationError (hypothesis fuzzing)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import cbor2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ecert.errors import PresentationError
from ecert.presentation import base45, cwt

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

cbor_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**64), max_value=2**64)
    | st.floats()
    | st.binary(max_size=40)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(st.integers(-70000, 70000) | st.text(max_size=5), children, max_size=5)
        | st.builds(cbor2.CBORTag, st.sampled_from([0, 1, 2, 18, 61, 24, 258, 1000]), children)
    ),
    max_leaves=20,
)


def outcome(text: str, issuer: Any, now: datetime) -> str:
    try:
        cwt.decode_and_verify(text, issuer.lookup(), now)
    except PresentationError as exc:
        return exc.code
    return "ok"


@FUZZ
@given(data=st.binary(max_size=400))
def test_random_bytes(issuer: Any, now: datetime, data: bytes) -> None:
    assert outcome("SZ1:" + base45.encode(data), issuer, now) != "ok"


@FUZZ
@given(text=st.text(max_size=400))
def test_random_text(issuer: Any, now: datetime, text: str) -> None:
    assert outcome(text, issuer, now) != "ok"
    assert outcome("SZ1:" + text, issuer, now) != "ok"


@FUZZ
@given(value=cbor_values)
def test_random_cbor_structures(issuer: Any, now: datetime, value: Any) -> None:
    try:
        raw = cbor2.dumps(value)
    except Exception:  # noqa: BLE001 - some generated values are not encodable; skip them
        return
    assert outcome("SZ1:" + base45.encode(raw), issuer, now) != "ok"


@FUZZ
@given(header=cbor_values, payload=cbor_values, unprotected=cbor_values)
def test_random_cose_parts(
    issuer: Any, now: datetime, header: Any, payload: Any, unprotected: Any
) -> None:
    try:
        msg = cbor2.CBORTag(
            18, [cbor2.dumps(header), unprotected, cbor2.dumps(payload), b"\0" * 64]
        )
        raw = cbor2.dumps(msg)
    except Exception:  # noqa: BLE001
        return
    assert outcome("SZ1:" + base45.encode(raw), issuer, now) != "ok"


@FUZZ
@given(cut=st.integers(min_value=0, max_value=400))
def test_truncated_valid_code(issuer: Any, now: datetime, cut: int) -> None:
    text = cwt.encode_presentation(
        issuer.private_key,
        issuer.kid_bytes,
        cert_type="eid",
        masked_name="张*",
        masked_id="4403**********1234",
        issued_at=now,
        expires_at=now + timedelta(seconds=60),
    )
    if cut < len(text):
        assert outcome(text[:cut], issuer, now) != "ok"


@FUZZ
@given(
    edits=st.lists(
        st.tuples(st.integers(min_value=4, max_value=400), st.sampled_from(base45.ALPHABET)),
        min_size=1,
        max_size=4,
    )
)
def test_mutated_valid_code(issuer: Any, now: datetime, edits: list[tuple[int, str]]) -> None:
    text = cwt.encode_presentation(
        issuer.private_key,
        issuer.kid_bytes,
        cert_type="eid",
        masked_name="张*",
        masked_id="4403**********1234",
        issued_at=now,
        expires_at=now + timedelta(seconds=60),
    )
    chars = list(text)
    for pos, ch in edits:
        chars[pos % len(chars) if pos >= len(chars) else pos] = ch
    mutated = "".join(chars)
    result = outcome(mutated, issuer, now)
    # Either nothing changed, or the change is caught; a changed code never verifies.
    assert result != "ok" or mutated == text
