"""Offline verification of a QR presentation from published material only.

A scanner without a network connection holds the issuers' JWKS and the signed
Status List Tokens it last fetched, keyed by list URI. With these it checks
the signature, the validity window and the revocation / suspension status.

It does NOT check replay: the one-time ``cti`` nonce is consumed in the
online service's shared store, which an offline device cannot see. A code
shown twice within its short lifetime passes offline; staff who need
one-time use must scan online. Missing or invalid status lists fail closed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ecert.errors import (
    CertificateRevoked,
    CertificateSuspended,
    StatusListInvalid,
    StatusListUnavailable,
)
from ecert.presentation.cwt import DEFAULT_SKEW_SECONDS, Presentation, decode_and_verify
from ecert.presentation.keys import jwks_key_lookup
from ecert.presentation.status_list import (
    STATUS_SUSPENDED,
    STATUS_VALID,
    verify_status_list_token,
)


@dataclass(frozen=True)
class OfflineResult:
    presentation: Presentation
    status_checked: bool  # False when the presentation carries no status reference
    status_list_issued_at: datetime | None
    status_list_stale: bool  # the list's ttl has run out; refresh when back online


def verify_offline(
    text: str,
    jwks: Mapping[str, Any],
    status_list_tokens: Mapping[str, str],
    now: datetime,
    skew: int = DEFAULT_SKEW_SECONDS,
) -> OfflineResult:
    """Verify ``text``; raise a ``PresentationError`` or ``CertificateStatusError`` if not valid."""
    presentation = decode_and_verify(text, jwks_key_lookup(jwks), now, skew)
    ref = presentation.status
    if ref is None:
        return OfflineResult(presentation, False, None, False)
    token = status_list_tokens.get(ref.uri)
    if token is None:
        raise StatusListUnavailable("no status list is held for this certificate")
    status_token = verify_status_list_token(token, jwks, now=now, expected_uri=ref.uri, leeway=skew)
    if ref.idx >= status_token.status_list.size:
        raise StatusListInvalid("the certificate's index is outside its status list")
    status = status_token.status_list.get(ref.idx)
    if status == STATUS_SUSPENDED:
        raise CertificateSuspended()
    if status != STATUS_VALID:
        # 1 is INVALID; any other value is unknown to us, so it is not accepted either.
        raise CertificateRevoked()
    return OfflineResult(presentation, True, status_token.issued_at, status_token.is_stale(now))
