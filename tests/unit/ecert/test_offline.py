"""Offline verification from a JWKS and signed status lists only."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from ecert import errors
from ecert.presentation import cwt
from ecert.presentation.offline import verify_offline
from ecert.presentation.status_list import (
    STATUS_INVALID,
    STATUS_SUSPENDED,
    StatusList,
    sign_status_list,
)

URI = "https://sz.gov.cn/sl/1"


def code(issuer: Any, now: datetime, idx: int | None = 5) -> str:
    return cwt.encode_presentation(
        issuer.private_key,
        issuer.kid_bytes,
        cert_type="eid",
        masked_name="张*",
        masked_id="4403**********1234",
        issued_at=now,
        expires_at=now + timedelta(seconds=60),
        status=None if idx is None else cwt.StatusRef(idx, URI),
    )


def lists(issuer: Any, now: datetime, **statuses: int) -> dict[str, str]:
    sl = StatusList(64)
    for idx, value in statuses.items():
        sl.set(int(idx.removeprefix("i")), value)
    token = sign_status_list(
        issuer.private_key,
        issuer.kid,
        uri=URI,
        status_list=sl,
        issued_at=now - timedelta(hours=2),
        expires_at=now + timedelta(days=1),
        ttl=3600,
    )
    return {URI: token}


def test_valid_certificate(issuer: Any, now: datetime) -> None:
    result = verify_offline(code(issuer, now), {"keys": [issuer.jwk()]}, lists(issuer, now), now)
    assert result.presentation.masked_name == "张*"
    assert result.status_checked
    assert result.status_list_issued_at == now - timedelta(hours=2)
    assert result.status_list_stale  # issued 2 h ago with a 1 h ttl: refresh when online


def test_revoked_certificate(issuer: Any, now: datetime) -> None:
    with pytest.raises(errors.CertificateRevoked) as err:
        verify_offline(
            code(issuer, now), {"keys": [issuer.jwk()]}, lists(issuer, now, i5=STATUS_INVALID), now
        )
    assert err.value.code == "certificate-revoked"


def test_suspended_certificate(issuer: Any, now: datetime) -> None:
    with pytest.raises(errors.CertificateSuspended) as err:
        verify_offline(
            code(issuer, now),
            {"keys": [issuer.jwk()]},
            lists(issuer, now, i5=STATUS_SUSPENDED),
            now,
        )
    assert err.value.code == "certificate-suspended"


def test_unknown_status_value_is_not_accepted(issuer: Any, now: datetime) -> None:
    with pytest.raises(errors.CertificateRevoked):
        verify_offline(code(issuer, now), {"keys": [issuer.jwk()]}, lists(issuer, now, i5=3), now)


def test_other_entries_do_not_matter(issuer: Any, now: datetime) -> None:
    status = lists(issuer, now, i4=STATUS_INVALID, i6=STATUS_SUSPENDED)
    assert verify_offline(code(issuer, now), {"keys": [issuer.jwk()]}, status, now).status_checked


def test_missing_status_list_fails_closed(issuer: Any, now: datetime) -> None:
    with pytest.raises(errors.StatusListUnavailable):
        verify_offline(code(issuer, now), {"keys": [issuer.jwk()]}, {}, now)


def test_index_outside_the_list_fails_closed(issuer: Any, now: datetime) -> None:
    with pytest.raises(errors.StatusListInvalid):
        verify_offline(code(issuer, now, idx=64), {"keys": [issuer.jwk()]}, lists(issuer, now), now)


def test_status_list_from_an_untrusted_key(issuer: Any, other_issuer: Any, now: datetime) -> None:
    with pytest.raises(errors.StatusListInvalid):
        verify_offline(code(issuer, now), {"keys": [issuer.jwk()]}, lists(other_issuer, now), now)


def test_no_status_reference(issuer: Any, now: datetime) -> None:
    result = verify_offline(code(issuer, now, idx=None), {"keys": [issuer.jwk()]}, {}, now)
    assert not result.status_checked


def test_presentation_checks_come_first(issuer: Any, other_issuer: Any, now: datetime) -> None:
    jwks = {"keys": [issuer.jwk()]}
    with pytest.raises(errors.QrExpired):
        verify_offline(code(issuer, now), jwks, lists(issuer, now), now + timedelta(minutes=5))
    with pytest.raises(errors.QrUnknownKey):
        verify_offline(code(other_issuer, now), jwks, lists(issuer, now), now)


def test_no_replay_check_offline(issuer: Any, now: datetime) -> None:
    # Documented limit: the same code passes twice offline; the online scan consumes cti.
    text, jwks, status = code(issuer, now), {"keys": [issuer.jwk()]}, lists(issuer, now)
    assert verify_offline(text, jwks, status, now) and verify_offline(text, jwks, status, now)
