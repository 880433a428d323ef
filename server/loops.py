"""The event loop long-running processes run on: uvloop where it is installed, else asyncio's.

uvloop (libuv, by asyncpg's authors) runs the same asyncio programs with its loop, sockets and
transports in C. Tornado, asyncpg and redis.asyncio run on it unchanged. On the payments bench
it took about 9 % off the server's CPU per payment (docs/payments.md, fifth round).

``SUPERAPP_EVENT_LOOP`` picks it: ``auto`` (the default: uvloop if importable), ``uvloop``
(fail when it is missing) or ``asyncio``. The server's workers and the simulators use it; the
one-shot commands (migrate, demo, ...) keep ``asyncio.run``.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

CHOICES = ("auto", "uvloop", "asyncio")


def _uvloop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop  # type: ignore[no-any-return]


def loop_factory(choice: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The factory for ``choice`` (None: asyncio's own loop); ValueError for a bad choice."""
    if choice not in CHOICES:
        raise ValueError(f"must be one of {', '.join(CHOICES)}, got {choice!r}")
    if choice == "asyncio":
        return None
    factory = _uvloop_factory()
    if factory is None and choice == "uvloop":
        raise ValueError("uvloop is not installed (pip install uvloop), or choose asyncio")
    return factory


def choice_from_env() -> str:
    return os.environ.get("SUPERAPP_EVENT_LOOP", "").strip() or "auto"


def loop_name(loop: asyncio.AbstractEventLoop | None = None) -> str:
    """``uvloop`` or ``asyncio``: what the running (or given) loop is."""
    loop = loop or asyncio.get_running_loop()
    return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"


def run(main: Coroutine[Any, Any, T], choice: str | None = None) -> T:
    """``asyncio.run(main)`` on the chosen loop (default: ``SUPERAPP_EVENT_LOOP``)."""
    factory = loop_factory(choice or choice_from_env())
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)
