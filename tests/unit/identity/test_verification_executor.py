"""The face executor: a spawned process, started on first use, replaced when it dies."""

from __future__ import annotations

import os
import signal
from concurrent.futures.process import BrokenProcessPool

import pytest

from identity.verification.executor import RespawningProcessPool


@pytest.mark.timeout(120)
def test_the_process_starts_lazily_and_is_replaced_after_a_crash() -> None:
    pool = RespawningProcessPool()
    try:
        assert not pool.started
        first = pool.submit(os.getpid).result(timeout=60)
        assert pool.started and first != os.getpid()
        os.kill(first, signal.SIGKILL)
        second = None
        for _ in range(3):  # the first call after the crash may see the broken pool
            try:
                second = pool.submit(os.getpid).result(timeout=60)
                break
            except BrokenProcessPool:
                continue
        assert second is not None and second != first
    finally:
        pool.shutdown()
    with pytest.raises(RuntimeError):
        pool.submit(os.getpid)
