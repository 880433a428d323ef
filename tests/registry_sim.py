"""The population-registry simulator as a real subprocess, for tests.

``RegistrySim`` starts ``server.sims.registry`` on a free port with the given
persons (fresh random ID numbers per run, so bindings never collide with the
demo data or with other tests in the same database) and the real demo photos.
"""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

import httpx

from identity.verification.resident_id import Sex, generate_resident_id
from server.sims.registry import DemoPerson

ROOT = Path(__file__).resolve().parents[1]
API_KEY = "test-registry-key"

_SCRIPT = """
import asyncio, json, sys
from identity.verification.face import LocalFaceVerifier
from server.sims.registry import DemoPerson, RegistrySimConfig, demo_photos, make_app

async def main():
    port, key, raw = int(sys.argv[1]), sys.argv[2], json.loads(sys.argv[3])
    people = tuple(DemoPerson(**p) for p in raw)
    config = RegistrySimConfig(
        api_key=key, persons=people, photos=demo_photos(), face_verifier=LocalFaceVerifier()
    )
    make_app(config).listen(port, address="127.0.0.1", max_body_size=16 << 20)
    await asyncio.Event().wait()

asyncio.run(main())
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_persons(count: int, photo: str | None = None, seed: int | None = None) -> list[DemoPerson]:
    """Made-up persons with unique valid ID numbers; both photographed people are women."""
    rng = random.Random(seed)  # noqa: S311 - test data
    surnames, given = "赵钱孙李周吴郑王冯陈", "伟芳娜敏静丽强磊洋艳勇军杰娟涛明超秀霞平"
    out = []
    for _ in range(count):
        number = generate_resident_id(rng, sex=Sex.FEMALE if photo else None)
        name = rng.choice(surnames) + "".join(rng.choice(given) for _ in range(2))
        phone = "+86137" + "".join(str(rng.randrange(10)) for _ in range(8))
        out.append(DemoPerson(name, number, phone, photo=photo))
    return out


class RegistrySim:
    """``with RegistrySim(persons) as sim: sim.url``; the process ends on exit."""

    def __init__(self, persons: list[DemoPerson], api_key: str = API_KEY) -> None:
        self.persons = persons
        self.api_key = api_key
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = tempfile.TemporaryFile()
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> RegistrySim:
        people = json.dumps(
            [{"name": p.name, "id_number": p.id_number, "phone": p.phone, "photo": p.photo}
             for p in self.persons]
        )  # fmt: skip
        self._process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-c", _SCRIPT, str(self.port), self.api_key, people],
            cwd=ROOT,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        deadline = time.monotonic() + 90  # importing scikit-image and matplotlib takes seconds
        while True:
            if self._process.poll() is not None:
                raise RuntimeError(f"registry simulator exited: {self.output()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                self.__exit__(None, None, None)
                raise RuntimeError("registry simulator did not start")
            time.sleep(0.1)

    def output(self) -> str:
        self._log.seek(0)
        return self._log.read().decode(errors="replace")

    def __exit__(
        self,
        typ: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            self._process.wait(timeout=10)
        self._log.close()
