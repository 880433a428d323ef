"""Provider metadata: OpenID Connect Discovery 1.0 and RFC 8414."""

from __future__ import annotations

from typing import Any

from identity.oauth.scopes import CLAIMS_BY_SCOPE, STANDARD
from server.http import BaseHandler, route
from server.openapi import ANY_OBJ, op


def metadata(issuer: str) -> dict[str, Any]:
    claims = sorted(
        {"iss", "aud", "exp", "iat", "auth_time", "nonce", "at_hash", "azp"}
        | {c for cs in CLAIMS_BY_SCOPE.values() for c in cs}
    )
    return {
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}/oauth2/authorize",
        "token_endpoint": f"{issuer}/oauth2/token",
        "userinfo_endpoint": f"{issuer}/oauth2/userinfo",
        "revocation_endpoint": f"{issuer}/oauth2/revoke",
        "jwks_uri": f"{issuer}/.well-known/jwks.json",
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["ES256"],
        "scopes_supported": list(STANDARD),
        "claims_supported": claims,
        "acr_values_supported": ["L1", "L2", "L3"],
        "prompt_values_supported": ["none", "consent"],
        "token_endpoint_auth_methods_supported": [
            "client_secret_basic",
            "client_secret_post",
            "private_key_jwt",
            "none",
        ],
        "token_endpoint_auth_signing_alg_values_supported": ["ES256", "EdDSA"],
        "revocation_endpoint_auth_methods_supported": [
            "client_secret_basic",
            "client_secret_post",
            "private_key_jwt",
            "none",
        ],
        "code_challenge_methods_supported": ["S256"],
        "claims_parameter_supported": False,
        "request_parameter_supported": False,
        "request_uri_parameter_supported": False,
        "authorization_response_iss_parameter_supported": True,
        "service_documentation": f"{issuer}/docs",
    }


class _Metadata(BaseHandler):
    def get(self) -> None:
        self.set_header("Access-Control-Allow-Origin", "*")
        self.send_json(metadata(self.svc.settings.issuer))


class OpenIdConfiguration(_Metadata):
    openapi = {"get": op("OpenID Connect Discovery document", tag="oauth2", response=ANY_OBJ)}


class AuthorizationServerMetadata(_Metadata):
    openapi = {"get": op("RFC 8414 authorization server metadata", tag="oauth2", response=ANY_OBJ)}


ROUTES = [
    route("/.well-known/openid-configuration", OpenIdConfiguration),
    route("/.well-known/oauth-authorization-server", AuthorizationServerMetadata),
]
