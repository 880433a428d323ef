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
