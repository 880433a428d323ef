"""The process model: a supervisor that prepares storage, binds the port once
and forks N identical workers sharing it (Tornado's pre-fork model), restarts a
worker that dies, and on SIGTERM lets in-flight requests finish within a grace
period, then stops the simulators and the embedded servers it started.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import socket
import tempfile
import time
from collections.abc import Callable

import tornado.httpserver
import tornado.netutil

from server import loops
from server.settings import Settings

log = logging.getLogger("superapp.process")


async def run_worker(settings: Settings, sockets: list[socket.socket], worker: int) -> None:
    from server.app import make_app
    from server.bootstrap import build

    svc = await build(settings)
    svc.start_background()
    await svc.gateway.routes.ensure_loaded()
    app = make_app(svc)
    # What start-up built lives as long as the worker: keep it out of the cyclic GC's
    # full collections, whose pauses otherwise grow with it (10,000 apps' routes).
    gc.freeze()
    # idle_connection_timeout also bounds the wait for a request's head (Tornado's
    # header_timeout); body_timeout bounds the whole body.
    server = tornado.httpserver.HTTPServer(
        app,
        max_body_size=settings.max_body_bytes * 2 + 1,
        idle_connection_timeout=60,
        body_timeout=settings.body_timeout,
    )
    server.add_sockets(sockets)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log.info(
        "worker ready",
        extra={"worker": worker, "pid": os.getpid(), "event_loop": loops.loop_name(loop)},
    )
    await stop.wait()
    server.stop()  # stop accepting; in-flight requests go on
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(server.close_all_connections(), settings.shutdown_grace)
    await svc.close()
    log.info("worker stopped", extra={"worker": worker, "pid": os.getpid()})


def serve(
    settings: Settings, start_children: Callable[[Settings], list[object]] | None = None
) -> int:
    from server.bootstrap import prepare_database, resolve

    resolved, embedded = resolve(settings)
    children: list[object] = []
    try:
        asyncio.run(prepare_database(resolved))
        if start_children is not None:
            children = start_children(resolved)
        sockets = tornado.netutil.bind_sockets(resolved.port, resolved.host, reuse_port=False)
        if resolved.workers > 1:
            _multiprocess_metrics()
        log.info(
            "serving",
            extra={"url": f"http://{resolved.host}:{resolved.port}", "worker": resolved.workers},
        )
        return _supervise(resolved, sockets)
    finally:
        for child in children:
            with contextlib.suppress(Exception):
                child.terminate()  # type: ignore[attr-defined]
                child.wait(5)  # type: ignore[attr-defined]
        embedded.stop()


def _multiprocess_metrics() -> None:
    """Let /metrics on any worker report all workers (prometheus_client multiprocess mode).

    prometheus_client picks its value class at import, so it is switched here,
    before any worker creates a metric."""
    from prometheus_client import values

    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or tempfile.mkdtemp(
        prefix="superapp-metrics-"
    )
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder
    values.ValueClass = values.MultiProcessValue()


def _supervise(settings: Settings, sockets: list[socket.socket]) -> int:
    workers: dict[int, int] = {}  # pid -> worker number
    stopping = False

    def spawn(n: int) -> None:
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                loops.run(run_worker(settings, sockets, n), settings.event_loop)
            except BaseException:  # noqa: BLE001 - a worker must never fall back into the supervisor
                log.exception("worker crashed", extra={"worker": n})
                code = 1
            finally:
                logging.shutdown()
                os._exit(code)  # no atexit handlers: the supervisor owns shared resources
        workers[pid] = n

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(workers):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    for n in range(settings.workers):
        spawn(n)
    restarts: list[float] = []
    while workers:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        n = workers.pop(pid, None)
        if n is None or stopping:
            continue
        now = time.monotonic()
        restarts = [t for t in restarts if now - t < 60] + [now]
        if len(restarts) > 10:
            log.error("workers keep crashing; stopping", extra={"worker": n})
            on_signal(signal.SIGTERM, None)
            continue
        log.warning("worker died; restarting", extra={"worker": n, "pid": pid})
        spawn(n)
    for s in sockets:
        s.close()
    return 0
