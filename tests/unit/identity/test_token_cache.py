"""The verified-token cache never serves a token it would now refuse."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from identity import keys
from identity.errors import InvalidToken
from identity.keys import KeyRing, SigningKey
from identity.tokens import TokenService


def _ring() -> KeyRing:
    key = keys.generate()
    past = datetime.now(UTC) - timedelta(minutes=1)
    return KeyRing([SigningKey(keys.kid_for(key.public_key()), "ES256", key, past, None, None)])


def test_cached_token_expires_with_its_exp() -> None:
    svc = TokenService(_ring(), issuer="https://x", access_ttl=30)
    token = svc.issue_access(sub="usr_a", sid="ses_a", acr=1, roles=[])
    assert svc.verify_access(token).sub == "usr_a"
    assert svc.verify_access(token).sub == "usr_a"  # served from the cache
    token_entry = svc._cache[token]
    svc._cache[token] = (token_entry[0], time.time() - 1, token_entry[2])  # as if expired
    with pytest.raises(InvalidToken):  # re-verified, and the real exp is checked
        svc.verify_access(svc.sign({"sub": "usr_a", "aud": "superapp-api"}, typ="at+jwt", ttl=-60))


def test_a_removed_key_invalidates_cached_tokens() -> None:
    svc = TokenService(_ring(), issuer="https://x")
    token = svc.issue_access(sub="usr_a", sid="ses_a", acr=1, roles=[])
    svc.verify_access(token)
    svc.ring = _ring()  # the signing key is gone from the ring
    with pytest.raises(InvalidToken):
        svc.verify_access(token)


def test_one_changed_byte_is_verified_afresh() -> None:
    svc = TokenService(_ring(), issuer="https://x")
    token = svc.issue_access(sub="usr_a", sid="ses_a", acr=1, roles=[])
    svc.verify_access(token)
    head, body, sig = token.split(".")
    flipped = sig[:-2] + ("A" if sig[-2] != "A" else "B") + sig[-1]
    with pytest.raises(InvalidToken):
        svc.verify_access(f"{head}.{body}.{flipped}")
