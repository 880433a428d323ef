"""The reference: a bare Tornado handler serving the same small JSON body."""

import asyncio
import sys

import tornado.web


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
    asyncio.run(main(int(sys.argv[1])))
