"""The one error taxonomy every context uses.

A domain error carries a stable machine ``code`` (RFC 9457 problem ``code``
extension), a ``kind`` that ``server/errors.py`` maps to an HTTP status in one
table, and a ``detail`` safe to show to the client. Contexts subclass
``DomainError`` in their own ``errors.py``.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

Kind = Literal[
    "invalid",  # 400: malformed request
    "unauthorized",  # 401: no or bad credentials
    "forbidden",  # 403: authenticated but not allowed
    "not_found",  # 404
    "conflict",  # 409: state conflict, duplicate
    "gone",  # 410: expired or already used
    "unprocessable",  # 422: well-formed but semantically invalid
    "rate_limited",  # 429
    "unavailable",  # 503: a dependency is down
    "bad_gateway",  # 502: an upstream answered badly
    "timeout",  # 504: an upstream did not answer in time
]


class DomainError(Exception):
    """Base of every error a client may see."""

    code: ClassVar[str] = "error"
    kind: ClassVar[Kind] = "invalid"
    title: ClassVar[str] = "Request failed"

    def __init__(self, detail: str | None = None, **extra: Any) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        # Extra members of the problem body (e.g. ``field``, ``required_level``)
        # and ``retry_after`` seconds for 429/503.
        self.extra = extra


class ValidationError(DomainError):
    code = "validation-failed"
    kind = "unprocessable"
    title = "A field is invalid"

    def __init__(self, field: str, detail: str) -> None:
        super().__init__(detail, field=field)
        self.field = field


class NotFound(DomainError):
    code = "not-found"
    kind = "not_found"
    title = "Not found"


class Forbidden(DomainError):
    code = "forbidden"
    kind = "forbidden"
    title = "Not allowed"


class Unauthorized(DomainError):
    code = "unauthorized"
    kind = "unauthorized"
    title = "Authentication required"


class InvalidToken(DomainError):
    code = "invalid-token"
    kind = "unauthorized"
    title = "The token is invalid"


class InsufficientAssurance(DomainError):
    code = "insufficient-assurance"
    kind = "forbidden"
    title = "A higher assurance level is required"


class DependencyUnavailable(DomainError):
    code = "dependency-unavailable"
    kind = "unavailable"
    title = "A dependency is unavailable"


class RateLimited(DomainError):
    code = "rate-limited"
    kind = "rate_limited"
    title = "Too many requests"


class Conflict(DomainError):
    code = "conflict"
    kind = "conflict"
    title = "Conflict"


class InvalidOtp(DomainError):
    code = "invalid-otp"
    kind = "unauthorized"
    title = "The code is wrong or has expired"


class TooManyAttempts(DomainError):
    code = "too-many-attempts"
    kind = "rate_limited"
    title = "Too many attempts"


class OtpCooldown(DomainError):
    code = "otp-cooldown"
    kind = "rate_limited"
    title = "Wait before asking for another code"


class InvalidRefreshToken(DomainError):
    code = "invalid-refresh-token"
    kind = "unauthorized"
    title = "The refresh token is invalid"


class RefreshTokenReused(DomainError):
    code = "refresh-token-reused"
    kind = "unauthorized"
    title = "The refresh token was already used; the session is revoked"


class SessionRevoked(DomainError):
    code = "session-revoked"
    kind = "unauthorized"
    title = "The session has ended"


class UnsupportedGrant(DomainError):
    code = "unsupported-grant-type"
    kind = "invalid"
    title = "Unsupported grant type"
