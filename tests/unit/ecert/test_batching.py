"""Stage: items of one loop pass form one batch, items that arrive while a batch runs
form the next, and a failing batch fails only its own items."""

from __future__ import annotations

import asyncio

import pytest

from ecert.batching import Stage

pytestmark = pytest.mark.asyncio


class Recorder:
    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.failed: list[tuple[int, BaseException]] = []
        self.gate: asyncio.Event | None = None
        self.raise_on: int | None = None

    async def run(self, items: list[int]) -> None:
        self.batches.append(list(items))
        if self.gate is not None:
            await self.gate.wait()
        if self.raise_on in items:
            raise ConnectionError("store down")

    def fail(self, item: int, exc: BaseException) -> None:
        self.failed.append((item, exc))


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_items_of_one_loop_pass_form_one_batch() -> None:
    rec = Recorder()
    stage = Stage(rec.run, rec.fail)
    for i in range(5):
        stage.add([i])
    await settle()
    assert rec.batches == [[0, 1, 2, 3, 4]]
    stage.add([7])  # a lone item goes out on its own
    await settle()
    assert rec.batches[-1] == [7] and not rec.failed


async def test_items_during_a_running_batch_form_the_next_batch() -> None:
    rec = Recorder()
    rec.gate = asyncio.Event()
    stage = Stage(rec.run, rec.fail, max_batch=3)
    stage.add(range(4))
    await settle()
    stage.add([10, 11])
    await settle()
    assert rec.batches == [[0, 1, 2]]  # capped at max_batch, one batch in flight
    rec.gate.set()
    await settle()
    assert rec.batches == [[0, 1, 2], [3, 10, 11]]


async def test_a_failing_batch_fails_its_items_and_the_next_batch_still_runs() -> None:
    rec = Recorder()
    rec.gate = asyncio.Event()
    rec.raise_on = 1
    stage = Stage(rec.run, rec.fail)
    stage.add([1, 2])
    await settle()
    stage.add([3])
    rec.gate.set()
    await settle()
    assert [(i, type(e)) for i, e in rec.failed] == [(1, ConnectionError), (2, ConnectionError)]
    assert rec.batches == [[1, 2], [3]]


async def test_a_cancelled_stage_fails_what_it_held() -> None:
    rec = Recorder()
    rec.gate = asyncio.Event()
    stage = Stage(rec.run, rec.fail)
    stage.add([1, 2])
    await settle()
    stage.add([3])
    assert stage._task is not None
    stage._task.cancel()
    await settle()
    assert sorted(i for i, _ in rec.failed) == [1, 2, 3]
    assert all(isinstance(e, asyncio.CancelledError) for _, e in rec.failed)


async def test_idle_runs_when_the_stage_runs_dry_and_late_items_still_run() -> None:
    rec = Recorder()
    idled = 0
    stage: Stage[int]

    async def idle() -> None:
        nonlocal idled
        idled += 1
        if idled == 1:
            stage.add([9])  # arrives while the stage hands back what it held

    stage = Stage(rec.run, rec.fail, idle=idle)
    stage.add([1, 2])
    await settle()
    assert rec.batches == [[1, 2], [9]] and idled == 2 and not rec.failed
