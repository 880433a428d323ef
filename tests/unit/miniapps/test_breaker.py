"""Circuit breaker: Envoy-style ejection after 5 consecutive failures, growing ejection time."""

from __future__ import annotations

import pytest

from miniapps.breaker import BreakerRegistry, CircuitBreaker, is_failure
from miniapps.errors import UpstreamCircuitOpen


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def fail(breaker: CircuitBreaker, times: int) -> None:
    for _ in range(times):
        assert breaker.allow()
        breaker.record(503)


def test_four_failures_keep_it_closed_and_a_success_resets_the_count() -> None:
    breaker = CircuitBreaker(clock=Clock())
    fail(breaker, 4)
    breaker.record(200)
    fail(breaker, 4)
    assert breaker.state == "closed" and breaker.allow()


def test_fifth_consecutive_failure_ejects_for_30_seconds() -> None:
    clock = Clock()
    breaker = CircuitBreaker(clock=clock)
    fail(breaker, 5)
    assert breaker.state == "open"
    assert not breaker.allow()
    with pytest.raises(UpstreamCircuitOpen) as caught:
        breaker.acquire()
    assert caught.value.kind == "unavailable" and caught.value.extra["retry_after"] == 30
    clock.now += 29.9
    assert not breaker.allow()
    clock.now += 0.1
    assert breaker.state == "half_open"


def test_half_open_admits_one_probe_and_success_closes() -> None:
    clock = Clock()
    breaker = CircuitBreaker(clock=clock)
    fail(breaker, 5)
    clock.now += 30
    assert breaker.allow()  # the probe
    assert not breaker.allow()  # everyone else waits for its outcome
    breaker.record(204)
    assert breaker.state == "closed"
    assert all(breaker.allow() for _ in range(10))


def test_failed_probe_ejects_again_for_longer_capped_at_300s() -> None:
    clock = Clock()
    breaker = CircuitBreaker(clock=clock)
    fail(breaker, 5)
    durations = []
    for _ in range(12):
        opened = clock.now
        while not breaker.allow():
            clock.now += 1
        durations.append(clock.now - opened)
        breaker.record(None)  # the probe could not connect
    assert durations[:4] == [30, 60, 90, 120]
    assert max(durations) == 300 and durations[-1] == 300
    assert breaker.ejections == 13


def test_connect_failures_and_timeouts_count_4xx_do_not() -> None:
    assert is_failure(None) and is_failure(500) and is_failure(504)
    assert not is_failure(404) and not is_failure(429) and not is_failure(200)
    breaker = CircuitBreaker(clock=Clock())
    for status in (None, 502, 404, None, 500, 503, 500):
        breaker.record(status)
    assert breaker.state == "closed"  # the 404 broke the run of failures
    breaker.record(None)
    assert breaker.state == "open"


def test_probe_that_never_reports_does_not_wedge_the_circuit() -> None:
    clock = Clock()
    breaker = CircuitBreaker(clock=clock, probe_timeout=10)
    fail(breaker, 5)
    clock.now += 30
    assert breaker.allow()
    clock.now += 9
    assert not breaker.allow()
    clock.now += 1
    assert breaker.allow()  # the first probe was lost (cancelled); send another


def test_late_failures_while_open_do_not_extend_the_ejection() -> None:
    clock = Clock()
    breaker = CircuitBreaker(clock=clock)
    fail(breaker, 5)
    breaker.record(500)  # in-flight requests reporting after the ejection
    breaker.record(500)
    assert breaker.ejections == 1
    clock.now += 30
    assert breaker.allow()


def test_multiplier_decays_while_healthy() -> None:
    clock = Clock()
    breaker = CircuitBreaker(clock=clock)
    fail(breaker, 5)
    clock.now += 30
    breaker.allow()
    breaker.record(500)  # second ejection: 60 s
    clock.now += 60
    breaker.allow()
    breaker.record(200)
    clock.now += 65  # healthy for two base periods: multiplier 2 -> 0
    fail(breaker, 5)
    assert breaker.ejections == 1
    assert breaker.retry_after() == 30


def test_registry_keeps_one_breaker_per_upstream() -> None:
    clock = Clock()
    registry = BreakerRegistry(lambda: CircuitBreaker(clock=clock))
    fail(registry.get("https://a.example:443"), 5)
    assert registry.get("https://a.example:443").state == "open"
    assert registry.get("https://b.example:443").state == "closed"
    registry.forget("https://a.example:443")
    assert registry.get("https://a.example:443").state == "closed"


def test_an_abandoned_request_counts_neither_way_and_frees_the_probe() -> None:
    clock = Clock()
    breaker = CircuitBreaker(clock=clock)
    fail(breaker, 4)
    assert breaker.allow()
    breaker.abandon()  # the client left: no news about the upstream
    breaker.record(503)
    assert breaker.state == "open"  # the fifth failure in a row still ejects
    clock.now += 30
    assert breaker.allow()  # the probe ...
    breaker.abandon()  # ... whose client left
    assert breaker.state == "half_open"
    assert breaker.allow()  # another request may probe at once
    assert not breaker.allow()
