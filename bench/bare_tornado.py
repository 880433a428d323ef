"""The reference: a bare Tornado handler serving the same small JSON body, on the event loop
the server runs on (SUPERAPP_EVENT_LOOP, server/loops.py), so that a ratio compares code, not
loops."""

import asyncio
import sys
from pathlib import Path

import tornado.web

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from server import loops  # noqa: E402


class Health(tornado.web.RequestHandler):
    def get(self) -> None:
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(b'{"status":"ok"}')


class Me(tornado.web.RequestHandler):
    def get(self) -> None:
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(b'{"sub":"usr_x","phone":"+86 138****0000","assurance_level":"L1","roles":[]}')


async def main(port: int) -> None:
    app = tornado.web.Application([(r"/healthz", Health), (r"/me", Me)])
    app.listen(port, "127.0.0.1")
    await asyncio.Event().wait()


if __name__ == "__main__":
    loops.run(main(int(sys.argv[1])))
