"""Per-upstream circuit breaker with Envoy outlier-detection semantics.

Follows Envoy's ``outlier_detection`` defaults: an upstream is ejected after
``consecutive_5xx`` (5) consecutive 5xx answers or connect failures/timeouts;
it stays ejected ``base_ejection_time * ejections`` (30 s x n), capped at
``max_ejection_time`` (300 s). Like Envoy, the ejection multiplier decays by one
for every ``base_ejection_time`` the upstream stays healthy. Unlike Envoy (which
returns the host to the pool outright), after the ejection one half-open probe
is let through: success closes the circuit, failure ejects again, longer.

Pure and in-process: each gateway worker keeps its own breakers, as every
Envoy keeps its own outlier detector. The clock is injected for tests.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

from miniapps.errors import UpstreamCircuitOpen

State = Literal["closed", "open", "half_open"]


def is_failure(status: int | None) -> bool:
    """A 5xx answer, or ``None`` for connect failure / timeout / reset, counts against the host."""
    return status is None or status >= 500


class CircuitBreaker:
    """State machine for one upstream. Call :meth:`acquire` before, ``record_*`` after."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        consecutive_failures: int = 5,
        base_ejection_time: float = 30.0,
        max_ejection_time: float = 300.0,
        probe_timeout: float = 30.0,
    ) -> None:
        self._clock = clock
        self._threshold = consecutive_failures
        self._base = base_ejection_time
        self._max = max_ejection_time
        # A probe that never reports (cancelled request) must not wedge the circuit.
        self._probe_timeout = probe_timeout
        self._failures = 0
        self._ejections = 0
        self._healthy_since = clock()
        self._open_until = 0.0
        self._probe_started: float | None = None
        self._state: State = "closed"

    @property
    def state(self) -> State:
        if self._state == "open" and self._clock() >= self._open_until:
            return "half_open"
        return self._state

    @property
    def ejections(self) -> int:
        return self._ejections

    def retry_after(self) -> float:
        """Seconds until a request may be tried again (0 when one may go now)."""
        now = self._clock()
        if self._state == "open":
            return max(0.0, self._open_until - now)
        if self._state == "half_open" and self._probe_started is not None:
            return max(0.0, self._probe_started + self._probe_timeout - now)
        return 0.0

    def allow(self) -> bool:
        """True if a request may be sent now; in half-open admits exactly one probe."""
        now = self._clock()
        if self._state == "closed":
            return True
        if self._state == "open":
            if now < self._open_until:
                return False
            self._state = "half_open"
            self._probe_started = None
        if self._probe_started is None or now - self._probe_started >= self._probe_timeout:
            self._probe_started = now
            return True
        return False

    def acquire(self) -> None:
        """Like :meth:`allow` but raise :class:`UpstreamCircuitOpen` (503) when refused."""
        if not self.allow():
            raise UpstreamCircuitOpen(retry_after=max(1, round(self.retry_after() + 0.5)))

    def abandon(self) -> None:
        """A request that ended without telling anything about the upstream (the client
        left, or its body was refused): counts neither way; a half-open probe is freed so
        that the next request may probe."""
        if self._state == "half_open":
            self._probe_started = None

    def record(self, status: int | None) -> None:
        """Record the outcome of a request by HTTP status (``None``: no answer)."""
        if is_failure(status):
            self.record_failure()
        else:
            self.record_success()

    def record_success(self) -> None:
        now = self._clock()
        if self._state != "closed":
            self._state = "closed"
            self._probe_started = None
            self._healthy_since = now
        self._failures = 0

    def record_failure(self) -> None:
        now = self._clock()
        if self._state == "half_open":
            self._eject(now)
            return
        if self._state == "open":
            return  # a request sent before the ejection reported late
        self._failures += 1
        if self._failures >= self._threshold:
            self._eject(now)

    def _eject(self, now: float) -> None:
        if self._state == "closed":
            # Envoy decays the multiplier while the host stays healthy.
            healthy_periods = int((now - self._healthy_since) // self._base)
            self._ejections = max(0, self._ejections - healthy_periods)
        self._ejections += 1
        self._state = "open"
        self._open_until = now + min(self._base * self._ejections, self._max)
        self._probe_started = None
        self._failures = 0


class BreakerRegistry:
    """One breaker per upstream key (e.g. ``scheme://host:port``), created on first use."""

    def __init__(self, factory: Callable[[], CircuitBreaker] = CircuitBreaker) -> None:
        self._factory = factory
        self._breakers: dict[str, CircuitBreaker] = {}

    def get(self, upstream: str) -> CircuitBreaker:
        breaker = self._breakers.get(upstream)
        if breaker is None:
            breaker = self._breakers[upstream] = self._factory()
        return breaker

    def forget(self, upstream: str) -> None:
        """Drop state when an app's upstream changes (a new host starts healthy)."""
        self._breakers.pop(upstream, None)
