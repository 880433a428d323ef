"""The executor that runs local face comparison off the gateway's event loop.

dlib's HOG detector releases the GIL, but its ResNet descriptor call holds it
for about 0.1 s per face: in a thread it would stall every other request of
the worker that long. So each gateway worker gets one *process* (``spawn``, not
``fork``: the worker has threads and open sockets), started on the first
comparison, not at start-up, and holding the models (~30 MB) from then on.
A process that dies (out of memory, a crash in native code) is replaced on the
next submission instead of breaking face verification until a restart.
"""

from __future__ import annotations

import logging
import multiprocessing
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

__all__ = ["RespawningProcessPool"]

log = logging.getLogger(__name__)

T = TypeVar("T")


class RespawningProcessPool(Executor):
    """A lazily started ``spawn`` process pool that replaces itself once broken."""

    def __init__(self, max_workers: int = 1) -> None:
        self._max_workers = max_workers
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()
        self._closed = False

    @property
    def started(self) -> bool:
        return self._pool is not None

    def _current(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._closed:
                raise RuntimeError("the face executor is shut down")
            if self._pool is None:
                self._pool = ProcessPoolExecutor(
                    self._max_workers, mp_context=multiprocessing.get_context("spawn")
                )
            return self._pool

    def _discard(self, pool: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._pool is pool:
                self._pool = None
        pool.shutdown(wait=False, cancel_futures=True)

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        pool = self._current()
        try:
            return pool.submit(fn, *args, **kwargs)
        except BrokenProcessPool:
            log.warning("face worker process died; starting a new one")
            self._discard(pool)
            return self._current().submit(fn, *args, **kwargs)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            self._closed = True
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=wait, cancel_futures=cancel_futures)
