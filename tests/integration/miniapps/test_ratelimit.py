"""GCRA limiter against a real Redis: bursts, recovery, two keys, many clients, Redis down."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from redis.asyncio import Redis

from miniapps.errors import RateLimiterUnavailable, TooManyRequests
from miniapps.ratelimit import Limit, RateLimiter, app_keys

REDIS_URL = os.environ.get("SUPERAPP_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
ROOT = Path(__file__).resolve().parents[3]


@pytest_asyncio.fixture
async def redis() -> AsyncIterator[Redis]:
    client = Redis.from_url(REDIS_URL)
    yield client
    await client.aclose()


def prefix() -> str:
    return f"test:rl:{uuid.uuid4().hex}:"


def max_in_window(times_us: list[int], window_us: float) -> int:
    """Largest number of events in any closed interval of length ``window_us``."""
    times = sorted(times_us)
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while t - times[lo] > window_us:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_burst_lets_exactly_the_limit_through_then_refuses(redis: Redis) -> None:
    limiter = RateLimiter(redis, prefix=prefix())
    limit = Limit(count=10, period=60)
    decisions = await asyncio.gather(*(limiter.check("app", limit) for _ in range(25)))
    assert sum(d.allowed for d in decisions) == 10
    refused = [d for d in decisions if not d.allowed]
    assert all(d.remaining == 0 for d in refused)
    # One token comes back every 6 s.
    assert all(0 < d.retry_after <= 6.0 for d in refused)
    assert all(d.retry_after_seconds >= 1 for d in refused)
    assert sorted(d.remaining for d in decisions if d.allowed) == list(range(10))


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_rate_recovers_after_retry_after(redis: Redis) -> None:
    limiter = RateLimiter(redis, prefix=prefix())
    limit = Limit(count=5, period=1.0)  # one token per 200 ms
    for _ in range(5):
        assert (await limiter.check("k", limit)).allowed
    refused = await limiter.check("k", limit)
    assert not refused.allowed
    await asyncio.sleep(refused.retry_after + 0.02)
    assert (await limiter.check("k", limit)).allowed
    assert not (await limiter.check("k", limit)).allowed
    await asyncio.sleep(1.05)  # idle for a period: the whole burst is back
    assert sum([(await limiter.check("k", limit)).allowed for _ in range(7)]) == 5


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_two_keys_one_refusal_spends_neither(redis: Redis) -> None:
    limiter = RateLimiter(redis, prefix=prefix())
    app_key, alice = app_keys("app_x", "alice")
    _, bob = app_keys("app_x", "bob")
    per_app, per_citizen = Limit(count=5, period=60), Limit(count=2, period=60)
    alice_results = [
        (await limiter.check_all([(app_key, per_app), (alice, per_citizen)])).allowed
        for _ in range(4)
    ]
    assert alice_results == [True, True, False, False]
    # Alice's refused calls did not spend the app budget: Bob gets 2, then the app has 1 left.
    bob_first = await limiter.check_all([(app_key, per_app), (bob, per_citizen)])
    assert bob_first.allowed and bob_first.remaining == 1  # min(app 2 left, bob 1 left)
    assert (await limiter.check_all([(app_key, per_app), (bob, per_citizen)])).allowed
    _, carol = app_keys("app_x", "carol")
    assert (await limiter.check_all([(app_key, per_app), (carol, per_citizen)])).allowed
    refused = await limiter.check_all([(app_key, per_app), (carol, per_citizen)])
    assert not refused.allowed  # the app budget (5) is spent although Carol has 1 left


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_enforce_raises_rate_limited_with_retry_after(redis: Redis) -> None:
    limiter = RateLimiter(redis, prefix=prefix())
    limit = Limit(count=1, period=30)
    await limiter.enforce([("k", limit)])
    with pytest.raises(TooManyRequests) as caught:
        await limiter.enforce([("k", limit)])
    assert caught.value.kind == "rate_limited"
    assert 1 <= caught.value.extra["retry_after"] <= 30


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_concurrent_connections_never_exceed_gcra_bound(redis: Redis) -> None:
    key_prefix = prefix()
    limit = Limit(count=40, period=1.0, burst=5)  # T = 25 ms
    clients = [Redis.from_url(REDIS_URL) for _ in range(4)]
    limiters = [RateLimiter(c, prefix=key_prefix) for c in clients]
    allowed_at: list[int] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 1.5

    async def hammer(limiter: RateLimiter) -> None:
        while loop.time() < deadline:
            d = await limiter.check("shared", limit)
            if d.allowed:
                allowed_at.append(d.server_time_us)

    try:
        await asyncio.gather(*(hammer(lim) for lim in limiters for _ in range(3)))
    finally:
        for c in clients:
            await c.aclose()
    span = max(allowed_at) - min(allowed_at)
    t_us = limit.interval_us
    assert len(allowed_at) <= 5 + span // t_us + 1
    # ... and not much stingier (tokens are only lost if every client stalls > burst * T).
    assert len(allowed_at) >= 0.8 * (5 + span // t_us)
    for window_us in (1.0, 10_000, 100_000, 1_000_000):
        assert max_in_window(allowed_at, window_us) <= 5 + window_us // t_us


WORKER = """
import asyncio, json, sys, time
from redis.asyncio import Redis
from miniapps.ratelimit import Limit, RateLimiter

async def main(url, prefix, start):
    client = Redis.from_url(url)
    limiter = RateLimiter(client, prefix=prefix)
    limit = Limit(count=30, period=1.0, burst=1)
    times = []
    while time.time() < start:
        await asyncio.sleep(0.001)
    async def loop():
        while time.time() < start + 1.5:
            d = await limiter.check("strict", limit)
            if d.allowed:
                times.append(d.server_time_us)
    await asyncio.gather(*(loop() for _ in range(4)))
    await client.aclose()
    print(json.dumps(times))

asyncio.run(main(sys.argv[1], sys.argv[2], float(sys.argv[3])))
"""


@pytest.mark.timeout(60)
def test_two_processes_strict_limit_holds_in_every_sliding_window() -> None:
    import time

    key_prefix = prefix()
    start = time.time() + 1.5  # both processes begin together, after import time
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, REDIS_URL, key_prefix, str(start)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        for _ in range(2)
    ]
    per_process = [json.loads(p.communicate(timeout=30)[0]) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert all(len(times) > 5 for times in per_process)  # both really competed
    allowed_at = [t for times in per_process for t in times]
    # burst=1: at most `count` in any half-open window of one period (closed: count + 1).
    assert max_in_window(allowed_at, 1_000_000 - 1) <= 30
    assert max_in_window(allowed_at, 1_000_000 / 30 - 1) <= 1


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_impossible_requests_are_programming_errors(redis: Redis) -> None:
    limiter = RateLimiter(redis, prefix=prefix())
    with pytest.raises(ValueError):
        await limiter.check("k", Limit(count=5, period=1), cost=6)  # could never pass
    with pytest.raises(ValueError):
        await limiter.check_all([("k", Limit(5, 1)), ("k", Limit(5, 1))])
    with pytest.raises(ValueError):
        Limit(count=0, period=1)


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_redis_down_fails_closed_as_unavailable() -> None:
    dead = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
    limiter = RateLimiter(dead, prefix=prefix())
    with pytest.raises(RateLimiterUnavailable) as caught:
        await limiter.check("k", Limit(count=1, period=1))
    assert caught.value.kind == "unavailable"
    assert caught.value.code == "dependency-unavailable"
    await dead.aclose()


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_script_is_reloaded_after_script_flush(redis: Redis) -> None:
    limiter = RateLimiter(redis, prefix=prefix())
    limit = Limit(count=3, period=60)
    assert (await limiter.check("k", limit)).allowed
    await redis.script_flush()  # e.g. Redis restarted or failed over: NOSCRIPT on EVALSHA
    assert (await limiter.check("k", limit)).remaining == 1


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_checks_of_one_tick_share_a_pipeline_and_keep_their_own_decisions(
    redis: Redis,
) -> None:
    p = prefix()
    limiter = RateLimiter(redis, prefix=p)
    await redis.set(p + "broken", "not a number")  # this request's script run fails
    small, large = Limit(count=2, period=60), Limit(count=100, period=60)
    checks = [limiter.check("a", small) for _ in range(3)]
    checks += [limiter.check_all([("b", large), (f"c{i}", small)]) for i in range(3)]
    checks.append(limiter.check("broken", small))
    before = limiter.batches
    results = await asyncio.gather(*checks, return_exceptions=True)
    assert limiter.batches == before + 1  # one pipeline, one round trip for all seven
    a, b, broken = results[:3], results[3:6], results[6]
    assert [d.allowed for d in a] == [True, True, False]  # type: ignore[union-attr]
    assert [d.remaining for d in a] == [1, 0, 0]  # type: ignore[union-attr]
    assert [d.remaining for d in b] == [1, 1, 1]  # type: ignore[union-attr]
    assert int(await redis.get(p + "b")) > 0 and await redis.get(p + "c2") is not None
    assert isinstance(broken, RateLimiterUnavailable)  # only its own request fails


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_a_batch_after_script_flush_is_answered_whole(redis: Redis) -> None:
    limiter = RateLimiter(redis, prefix=prefix())
    limit = Limit(count=4, period=60)
    assert (await limiter.check("k", limit)).remaining == 3
    await redis.script_flush()
    decisions = await asyncio.gather(*(limiter.check("k", limit) for _ in range(5)))
    assert sorted(d.remaining for d in decisions) == [0, 0, 0, 1, 2]
    assert sum(d.allowed for d in decisions) == 3


@pytest.mark.timeout(10)
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_queue_left_by_a_stopped_loop_does_not_hold_up_the_next_loop() -> None:
    limiter = RateLimiter(Redis.from_url(REDIS_URL), prefix=prefix())
    limit = Limit(count=5, period=60)
    old = asyncio.new_event_loop()
    task = old.create_task(limiter.check("k", limit))
    old.call_soon(old.stop)  # stops after the check is queued, before its batch is sent
    old.run_forever()
    assert not task.done()
    old.close()  # the loop is gone with the check still queued

    async def fresh() -> int:
        try:
            return (await limiter.check("k", limit)).remaining
        finally:
            await limiter._redis.aclose()

    assert asyncio.run(fresh()) == 4


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_a_connection_closed_by_redis_while_idle_is_replaced(redis: Redis) -> None:
    limiter = RateLimiter(redis, prefix=prefix())
    limit = Limit(count=100, period=3600)  # no refill within the test

    async def kill_the_limiters_connection() -> None:
        host, port = limiter._conn._writer.get_extra_info("sockname")[:2]
        assert await redis.execute_command("CLIENT", "KILL", "ADDR", f"{host}:{port}") in (1, b"OK")

    assert (await limiter.check("k", limit)).allowed
    await kill_the_limiters_connection()  # Redis' idle `timeout`, a restart, a failover
    await asyncio.sleep(1.1)
    assert (await limiter.check("k", limit)).remaining == 98  # on a fresh connection, once
    # Right after a check the connection is not idle: a failure then fails closed (503),
    # since the calls might have run; the next check connects afresh.
    await kill_the_limiters_connection()
    with pytest.raises(RateLimiterUnavailable):
        await limiter.check("k", limit)
    assert (await limiter.check("k", limit)).remaining == 97


@pytest.mark.asyncio
@pytest.mark.timeout(30)
@pytest.mark.expect_error_logs
async def test_a_check_redis_cannot_take_fails_alone(redis: Redis) -> None:
    limiter = RateLimiter(redis, prefix=prefix())
    limit = Limit(count=5, period=60)
    bad = asyncio.ensure_future(limiter.check("\udc80", limit))  # no UTF-8 form
    for _ in range(3):  # its batch is out, waiting for the limiter's first connection
        await asyncio.sleep(0)
    good = asyncio.ensure_future(limiter.check("ok", limit))  # queued meanwhile
    with pytest.raises(RateLimiterUnavailable):
        await bad
    # The limiter keeps serving: the check queued meanwhile and later ones are answered.
    assert (await asyncio.wait_for(good, 5)).allowed
    assert (await asyncio.wait_for(limiter.check("ok", limit), 5)).allowed
