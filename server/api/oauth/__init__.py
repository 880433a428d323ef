"""OAuth 2 / OpenID Connect endpoints: discovery, authorisation, token,
revocation, UserInfo, and the citizen's quick-login codes and consents."""

from __future__ import annotations

from server.api.oauth import authorize, citizen, discovery, token
from server.api.oauth.base import OAuthError, OAuthHandler

__all__ = ["ROUTES", "OAuthError", "OAuthHandler"]

ROUTES = [
    *discovery.ROUTES,
    *authorize.ROUTES,
    *token.ROUTES,
    *citizen.ROUTES,
]
