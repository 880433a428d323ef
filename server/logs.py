"""JSON log lines. One line per request (method, route template, status,
duration, request id); never tokens, secrets or personal data: only the
fields named here are written, never headers or bodies."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

_FIELDS = (
    "request_id",
    "method",
    "route",
    "status",
    "duration_ms",
    "url",
    "migration",
    "worker",
    "pid",
    "port",
    "sim",
    "signal",
    "error",
    "event_loop",
)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key in _FIELDS:
            if key in record.__dict__:
                line[key] = record.__dict__[key]
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def setup_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Tornado's own access log would duplicate ours; pgserver is chatty at INFO.
    logging.getLogger("tornado.access").setLevel(logging.WARNING)
    logging.getLogger("pgserver").setLevel(logging.WARNING)
