"""RFC 7636 Proof Key for Code Exchange, S256 only (``plain`` is refused)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

_CHALLENGE = re.compile(r"^[A-Za-z0-9_-]{43}$")
_VERIFIER = re.compile(r"^[A-Za-z0-9._~-]{43,128}$")


def valid_challenge(challenge: str) -> bool:
    # base64url of a SHA-256 digest is always 43 characters.
    return bool(_CHALLENGE.match(challenge))


def s256(verifier: str) -> str:
    return (
        base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    )


def verify(verifier: str | None, challenge: str) -> bool:
    if not verifier or not _VERIFIER.match(verifier):
        return False
    return hmac.compare_digest(s256(verifier), challenge)
