"""Protocol errors in the RFC 6749 shape (``error``, ``error_description``).

An ``OAuthError`` is a ``DomainError`` whose problem ``code`` is the RFC's error
code, so the token endpoint's JSON carries both the problem fields and the
RFC fields. A ``RedirectError`` happens after the redirect URI was validated,
so the authorisation endpoint sends it back to the client (section 4.1.2.1).
"""

from __future__ import annotations

from identity.errors import DomainError


class OAuthError(DomainError):
    """An RFC 6749 section 5.2 error; ``code`` is the RFC's error code."""

    kind = "invalid"

    def __init__(self, error: str, detail: str, *, status_kind: str = "invalid") -> None:
        super().__init__(detail)
        self.code = error  # type: ignore[misc]
        self.kind = status_kind  # type: ignore[misc,assignment]
        self.title = error  # type: ignore[misc]
        self.extra = {"error": error, "error_description": detail}


class RedirectError(OAuthError):
    """An authorisation error returned to the (already validated) redirect URI."""

    def __init__(self, error: str, detail: str, *, redirect_uri: str, state: str | None) -> None:
        super().__init__(error, detail)
        self.redirect_uri = redirect_uri
        self.state = state


def invalid_grant(detail: str) -> OAuthError:
    return OAuthError("invalid_grant", detail)


def invalid_client(detail: str = "Client authentication failed.") -> OAuthError:
    return OAuthError("invalid_client", detail, status_kind="unauthorized")
