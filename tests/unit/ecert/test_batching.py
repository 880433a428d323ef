"""MicroBatcher: concurrent calls share a batch, and each gets its own result or error."""

from __future__ import annotations

import asyncio

import pytest

from ecert.batching import MicroBatcher

pytestmark = pytest.mark.asyncio


class Recorder:
    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.gate: asyncio.Event | None = None

    async def run(self, items: list[int]) -> list[int | BaseException]:
        self.batches.append(list(items))
        if self.gate is not None:
            await self.gate.wait()
        return [ValueError(f"bad {i}") if i < 0 else i * 10 for i in items]


async def test_calls_of_one_loop_pass_form_one_batch() -> None:
    rec = Recorder()
    batcher = MicroBatcher(rec.run)
    assert await asyncio.gather(*(batcher.submit(i) for i in range(5))) == [0, 10, 20, 30, 40]
    assert rec.batches == [[0, 1, 2, 3, 4]]
    assert await batcher.submit(7) == 70  # a lone call goes out on its own
    assert rec.batches[-1] == [7]


async def test_one_failing_item_fails_only_its_caller() -> None:
    rec = Recorder()
    batcher = MicroBatcher(rec.run)
    results = await asyncio.gather(*(batcher.submit(i) for i in (1, -2, 3)), return_exceptions=True)
    assert results[0] == 10 and results[2] == 30
    assert isinstance(results[1], ValueError) and str(results[1]) == "bad -2"
    assert rec.batches == [[1, -2, 3]]


async def test_calls_during_a_running_batch_form_the_next_batch() -> None:
    rec = Recorder()
    rec.gate = asyncio.Event()
    batcher = MicroBatcher(rec.run, max_batch=3)
    first = [asyncio.ensure_future(batcher.submit(i)) for i in range(4)]
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    later = [asyncio.ensure_future(batcher.submit(i)) for i in (10, 11)]
    await asyncio.sleep(0)
    assert rec.batches == [[0, 1, 2]]  # capped at max_batch, one batch in flight
    rec.gate.set()
    assert await asyncio.gather(*first, *later) == [0, 10, 20, 30, 100, 110]
    assert rec.batches == [[0, 1, 2], [3, 10, 11]]


async def test_a_failing_batch_fails_each_caller_and_the_next_batch_still_runs() -> None:
    calls = 0

    async def run(items: list[int]) -> list[int | BaseException]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("store down")
        return items

    batcher = MicroBatcher(run)
    results = await asyncio.gather(batcher.submit(1), batcher.submit(2), return_exceptions=True)
    assert all(isinstance(r, ConnectionError) for r in results)
    assert await batcher.submit(3) == 3


async def test_a_wrong_number_of_results_is_an_error_not_a_mixup() -> None:
    async def run(items: list[int]) -> list[int | BaseException]:
        return items[:-1]

    batcher = MicroBatcher(run)
    with pytest.raises(RuntimeError):
        await asyncio.gather(batcher.submit(1), batcher.submit(2))
