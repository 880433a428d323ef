"""Errors of the mini-app platform and its gateway.

Each subclasses :class:`identity.errors.DomainError`; ``server/errors.py`` maps
``kind`` to an HTTP status and renders RFC 9457 problem details with ``code``.
"""

from __future__ import annotations

from typing import ClassVar

from identity.errors import DependencyUnavailable, DomainError, Kind, RateLimited


class RateLimiterUnavailable(DependencyUnavailable):
    """Redis could not be asked; the gateway fails closed (503) rather than open."""

    code = "dependency-unavailable"
    kind = "unavailable"
    title = "The rate limiter is unavailable"


class TooManyRequests(RateLimited):
    """A per-app or per-citizen budget is spent; ``extra['retry_after']`` says when to retry."""

    code = "rate-limited"
    kind = "rate_limited"
    title = "Too many requests"


class UpstreamNotAllowed(DomainError):
    """A unit registered an upstream URL the platform must not call (review time)."""

    code = "upstream-not-allowed"
    kind: ClassVar[Kind] = "unprocessable"
    title = "The upstream address is not allowed"


class UpstreamAddressRefused(UpstreamNotAllowed):
    """At connect time a name resolved to a refused address (DNS rebinding): answer 502."""

    kind = "bad_gateway"


class UpstreamCircuitOpen(DomainError):
    """The upstream is ejected by the circuit breaker; ``extra['retry_after']`` in seconds."""

    code = "upstream-circuit-open"
    kind = "unavailable"
    title = "The mini-app service is temporarily unavailable"


class UpstreamTimeout(DomainError):
    """The mini-app service did not answer within the gateway's timeout (504)."""

    code = "upstream-timeout"
    kind = "timeout"
    title = "The mini-app service did not answer in time"


class UpstreamUnreachable(DomainError):
    """The gateway could not connect to the mini-app service, or it broke the response (502)."""

    code = "upstream-unreachable"
    kind = "bad_gateway"
    title = "The mini-app service could not be reached"


class MiniAppNotFound(DomainError):
    code = "miniapp-not-found"
    kind = "not_found"
    title = "No such mini-app"


class VersionNotFound(DomainError):
    code = "version-not-found"
    kind = "not_found"
    title = "No such version of this mini-app"


class VersionExists(DomainError):
    code = "version-exists"
    kind = "conflict"
    title = "This version already exists"


class InvalidTransition(DomainError):
    """A lifecycle step that the current status does not allow (e.g. release a draft)."""

    code = "invalid-transition"
    kind = "conflict"
    title = "Not allowed in the current status"


class RollbackNotAllowed(DomainError):
    code = "rollback-not-allowed"
    kind = "conflict"
    title = "Rollback is possible only to one of the last 5 released versions"


class MiniAppUnavailable(DomainError):
    """The app is suspended or offline: the gateway sends it no traffic."""

    code = "miniapp-unavailable"
    kind = "unavailable"
    title = "This mini-app is not available now"


class InvalidGatewayPath(DomainError):
    """A path the gateway will not forward (a dot segment could climb above the app's base)."""

    code = "invalid-path"
    kind = "invalid"
    title = "This path cannot be forwarded"


class NotInRelease(DomainError):
    """The app's first release is in gray and this citizen is outside it."""

    code = "miniapp-not-released"
    kind = "not_found"
    title = "This mini-app is not available to you yet"


class UpstreamResponseTooLarge(DomainError):
    code = "upstream-response-too-large"
    kind = "bad_gateway"
    title = "The mini-app service answered with a body that is too large"


class NoUseToRate(DomainError):
    """A rating needs a use: the citizen reached the app in this session."""

    code = "no-use-to-rate"
    kind = "conflict"
    title = "Use the mini-app before rating it"


class AlreadyRated(DomainError):
    code = "already-rated"
    kind = "conflict"
    title = "This use is already rated"


class FollowUpNotFound(DomainError):
    code = "followup-not-found"
    kind = "not_found"
    title = "No such follow-up"
