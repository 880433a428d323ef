"""Pure rules of the provider: PKCE S256, scope parsing, name masking."""

from __future__ import annotations

import pytest

from identity.oauth import pkce, scopes
from identity.oauth.errors import OAuthError
from identity.oauth.issuance import at_hash


def test_pkce_s256_matches_rfc7636_appendix_b() -> None:
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    assert pkce.s256(verifier) == challenge and pkce.valid_challenge(challenge)
    assert pkce.verify(verifier, challenge)
    assert not pkce.verify(verifier[:-1] + "x", challenge)
    assert not pkce.verify("short", pkce.s256("short"))  # under 43 characters
    assert not pkce.verify(None, challenge)
    assert not pkce.valid_challenge(verifier + "=")


def test_scopes() -> None:
    assert scopes.parse("openid phone openid ecert:hukou") == ["openid", "phone", "ecert:hukou"]
    for bad in ("admin", "ecert:", "ecert:UPPER", "openid offline_access"):
        with pytest.raises(OAuthError):
            scopes.parse(bad)
    assert scopes.grantable(["openid", "real_name"], ()) == ["openid"]
    assert scopes.grantable(["openid", "real_name"], ("real_name",)) == ["openid", "real_name"]


def test_at_hash() -> None:
    # OIDC Core 3.1.3.6 example shape: 22 base64url characters (128 bits).
    assert len(at_hash("token")) == 22
