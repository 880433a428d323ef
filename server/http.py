"""BaseHandler: request id, body with a size cap, JSON decoding, bearer-token
authentication (verified locally against the key ring), and RFC 9457 problem
rendering for every error, including 404, 405, 413 and unexpected exceptions.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import tornado.httputil
import tornado.web

from identity.errors import DomainError, Unauthorized, ValidationError
from identity.tokens import Principal
from server import errors

if TYPE_CHECKING:
    from server.bootstrap import Services

log = logging.getLogger("superapp.http")
access_log = logging.getLogger("superapp.access")

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


@dataclass(frozen=True)
class Route:
    """A route by its OpenAPI path template (``/api/v1/x/{id}``)."""

    template: str
    handler: type[Any]  # a BaseHandler, or a server.lean.LeanHandler
    kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def pattern(self) -> str:
        def group(m: re.Match[str]) -> str:
            name, _, kind = m.group(1).partition(":")
            return f"(?P<{name}>.*)" if kind == "path" else f"(?P<{name}>[^/]+)"

        return re.sub(r"\{([a-z_]+(?::path)?)\}", group, self.template) + "$"

    @property
    def openapi_path(self) -> str:
        return re.sub(r"\{([a-z_]+):path\}", r"{\1}", self.template)


def route(template: str, handler: type[Any], **kwargs: Any) -> Route:
    return Route(template, handler, kwargs)


def new_request_id() -> str:
    return "req_" + secrets.token_hex(8)


def request_id_from(headers: tornado.httputil.HTTPHeaders) -> str:
    """The client's ``X-Request-Id`` when it is a plain token, else a new one."""
    incoming = headers.get("X-Request-Id", "")
    return incoming if _REQUEST_ID.match(incoming) else new_request_id()


def bearer_principal(svc: Services, headers: tornado.httputil.HTTPHeaders) -> Principal | None:
    """The verified caller of a ``Bearer`` token, or None; a bad token raises
    ``invalid-token``. Verified locally: no database or Redis round trip."""
    scheme, _, token = headers.get("Authorization", "").partition(" ")
    # Other schemes (Basic for OAuth clients) are read by their routes.
    if scheme.lower() == "bearer" and token.strip():
        return svc.tokens.verify_access(token.strip())
    return None


_date_cache: tuple[int, str] = (0, "")


def http_date() -> str:
    """The ``Date`` field, formatted once a second."""
    global _date_cache
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache = (now, tornado.httputil.format_timestamp(now))
    return _date_cache[1]


def reason(status: int) -> str:
    return tornado.httputil.responses.get(status, "Unknown")


NOT_FOUND_DETAIL = "There is nothing at this address."


def http_error_problem(e: tornado.web.HTTPError, request_id: str) -> dict[str, Any]:
    """The problem for a framework-level refusal (``HTTPError``): its message as the
    detail below 500, none (a generic one) from 500 up."""
    detail = e.log_message if e.status_code < 500 else None
    if e.status_code == 404 and detail is None:
        detail = NOT_FOUND_DETAIL
    return errors.from_status(e.status_code, request_id, detail)


def record_request(
    svc: Services, method: str, route: str, status: int, started: float, request_id: str
) -> None:
    """Metrics and the access log of a request served without a ``RequestHandler``
    (whose own are ``BaseHandler.on_finish`` and the application's log function)."""
    elapsed = time.perf_counter() - started
    svc.metrics.observe(method, route, status, elapsed)
    log_access(method, route, status, elapsed, request_id)


def log_access(method: str, route: str, status: int, seconds: float, request_id: str) -> None:
    if access_log.isEnabledFor(logging.INFO):
        access_log.info(
            "request",
            extra={
                "method": method,
                "route": route,
                "status": status,
                "duration_ms": round(seconds * 1000, 2),
                "request_id": request_id,
            },
        )


def implemented_methods(cls: type) -> list[str]:
    """The HTTP methods a handler class (``BaseHandler`` or ``LeanHandler``) serves."""
    return [
        m
        for m in _METHODS
        if getattr(cls, m.lower(), None)
        not in (None, getattr(tornado.web.RequestHandler, m.lower()))
    ] or ["GET"]


class RequestHelpers:
    """What a handler reads from a request and how it answers JSON, shared by
    ``BaseHandler`` (a Tornado ``RequestHandler``) and ``server.lean.LeanHandler``
    (served straight on the connection). Both provide ``svc``, ``request``,
    ``body()``, ``get_query_argument``, ``set_status``, ``set_header`` and ``finish``."""

    svc: Services
    request: tornado.httputil.HTTPServerRequest
    _principal: Principal | None = None

    if TYPE_CHECKING:

        def body(self) -> bytes: ...
        def get_query_argument(self, name: str, default: Any = None, strip: bool = True) -> Any: ...
        def set_status(self, status_code: int, reason: str | None = None) -> None: ...
        def set_header(self, name: str, value: Any) -> None: ...
        def finish(self, chunk: Any = None) -> Any: ...

    @property
    def principal(self) -> Principal | None:
        """The verified caller, or None; a bad bearer token raises ``invalid-token``.

        Verified lazily, so public routes ignore an Authorization header they do
        not need, and verification needs no database or Redis round trip."""
        if self._principal is None:
            self._principal = bearer_principal(self.svc, self.request.headers)
        return self._principal

    def require_user(self, level: int = 1) -> Principal:
        p = self.principal
        if p is None or p.kind != "user":
            raise Unauthorized("Sign in first: send an access token as a Bearer token.")
        p.require_level(level)
        return p

    def require_client(self) -> Principal:
        p = self.principal
        if p is None or p.kind != "client":
            raise Unauthorized("This call needs a client access token (client_credentials).")
        return p

    @property
    def client_ip(self) -> str:
        return self.request.remote_ip or ""

    def json_body(self, *, required: bool = True) -> dict[str, Any]:
        raw = self.body()
        if not raw.strip():
            if required:
                raise DomainErrorInvalidJson("A JSON object body is required.")
            return {}
        ctype = self.request.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if ctype != "application/json" and not ctype.endswith("+json"):
            raise tornado.web.HTTPError(415, "Send the body as application/json.")
        try:
            value = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise DomainErrorInvalidJson("The body is not valid JSON.") from None
        if not isinstance(value, dict):
            raise DomainErrorInvalidJson("The body must be a JSON object.")
        if b"\\u" in raw and _unstorable(value):  # the byte search keeps the common case free
            raise DomainErrorInvalidJson("Strings may not hold NUL (\\u0000) or lone surrogates.")
        return value

    def form_body(self) -> tuple[dict[str, list[bytes]], dict[str, list[Any]]]:
        """Parse a form or multipart body (OAuth endpoints, uploads, channel callbacks)."""
        args: dict[str, list[bytes]] = {}
        files: dict[str, list[Any]] = {}
        try:
            tornado.httputil.parse_body_arguments(
                self.request.headers.get("Content-Type", ""), self.body(), args, files
            )
        except tornado.httputil.HTTPInputError as e:  # e.g. multipart without a boundary
            raise DomainErrorInvalidForm(f"The body is not a valid form: {e}") from None
        if any(b"\x00" in v for values in args.values() for v in values):
            raise DomainErrorInvalidForm("Form values may not contain NUL (%00).")
        return args, files

    def query_int(self, name: str, default: int, lo: int, hi: int) -> int:
        # Unstripped: Tornado turns control characters into spaces, which must not read as empty.
        raw = self.get_query_argument(name, None, strip=False)
        if raw is None or raw == "":
            return default
        digits = raw.removeprefix("-")
        if not (digits.isascii() and digits.isdigit()) or not lo <= int(raw) <= hi:
            raise ValidationError(name, f"Must be a whole number from {lo} to {hi}.")
        return int(raw)

    def send_json(self, value: Any, status: int = 200, *, cache: str = "no-store") -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.set_header("Cache-Control", cache)
        self.finish(json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str))


@tornado.web.stream_request_body
class BaseHandler(RequestHelpers, tornado.web.RequestHandler):
    """Every handler's base. Handlers stay thin: parse, call one service, serialise."""

    #: OpenAPI operations by lower-case method, read by ``server/openapi.py``.
    openapi: dict[str, dict[str, Any]] = {}
    #: Largest body this route accepts (defaults to ``SUPERAPP_MAX_BODY_BYTES``).
    max_body: int | None = None

    def initialize(self, svc: Services, template: str = "", **_: Any) -> None:
        self.svc = svc
        self.template = template or "unmatched"
        self.request_id = ""
        self._chunks: list[bytes] = []
        self._size = 0
        self._too_large = False
        self._principal = None
        self._started = time.perf_counter()

    # request id, size cap ---------------------------------------------------------------

    def prepare(self) -> Awaitable[None] | None:
        self.request_id = request_id_from(self.request.headers)
        self.set_header("X-Request-Id", self.request_id)
        cap = self._cap
        length = self.request.headers.get("Content-Length")
        if length is not None:
            if not (length.isascii() and length.isdigit()):
                raise tornado.web.HTTPError(400, "Content-Length is not a number.")
            if int(length) > cap:
                raise tornado.web.HTTPError(413, f"The body may be at most {cap} bytes.")
        if any("\x00" in v for v in self.path_kwargs.values() if v):
            raise tornado.web.HTTPError(404)  # no id or name holds NUL (PostgreSQL text can't)
        if self.request.method in ("POST", "PUT", "PATCH") and hasattr(
            self.request.connection, "set_max_body_size"
        ):
            # Past twice the cap the connection is dropped; up to it we answer 413.
            self.request.connection.set_max_body_size(cap * 2 + 1)
        return None

    @property
    def _cap(self) -> int:
        return self.max_body or self.svc.settings.max_body_bytes

    def data_received(self, chunk: bytes) -> None:
        self._size += len(chunk)
        if self._size > self._cap:
            self._too_large = True
            self._chunks.clear()
        elif not self._too_large:
            self._chunks.append(chunk)

    def body(self) -> bytes:
        if self._too_large:
            raise tornado.web.HTTPError(413, f"The body may be at most {self._cap} bytes.")
        return b"".join(self._chunks)

    # errors ------------------------------------------------------------------------------

    def _handle_request_exception(self, e: BaseException) -> None:
        if not self.request_id:  # failed before prepare (a path that is not UTF-8)
            self.request_id = request_id_from(self.request.headers)
        if isinstance(e, DomainError):
            if self._finished:
                return
            body = errors.from_domain(e, self.request_id or "-")
            retry = e.extra.get("retry_after")
            if retry is not None:
                self.set_header("Retry-After", str(int(retry)))
            self._send_problem(body)
            return
        super()._handle_request_exception(e)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        detail = None
        exc_info = kwargs.get("exc_info")
        if exc_info is not None and isinstance(exc_info[1], tornado.web.HTTPError):
            detail = exc_info[1].log_message if status_code < 500 else None
        if status_code == 405:
            self.set_header("Allow", ", ".join(self.allowed_methods()))
            detail = f"Use one of: {', '.join(self.allowed_methods())}."
        if status_code == 404 and detail is None:
            detail = NOT_FOUND_DETAIL
        self._send_problem(errors.from_status(status_code, self.request_id or "-", detail))

    def _send_problem(self, body: dict[str, Any]) -> None:
        self.clear_header("Content-Type")
        self.set_status(body["status"])
        if not self.request_id:
            self.request_id = new_request_id()
        self.set_header("X-Request-Id", self.request_id)
        self.set_header("Content-Type", "application/problem+json")
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps(body, ensure_ascii=False))

    def allowed_methods(self) -> list[str]:
        return implemented_methods(type(self))

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        if isinstance(value, tornado.web.HTTPError) and value.status_code < 500:
            return  # client errors are in the access log, not the error log
        log.error(
            "unhandled error",
            exc_info=(typ, value, tb),
            extra={"request_id": self.request_id, "route": self.template},
        )

    def on_finish(self) -> None:
        self.svc.metrics.observe(
            self.request.method or "-", self.template, self.get_status(), self.elapsed
        )

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self._started


def _unstorable(value: Any) -> bool:
    """Whether a decoded JSON value holds a string PostgreSQL text cannot store: NUL, or
    a lone surrogate (``\\ud800``) that has no UTF-8 form."""
    if isinstance(value, str):
        if "\x00" in value:
            return True
        try:
            value.encode()
        except UnicodeEncodeError:
            return True
        return False
    if isinstance(value, dict):
        return any(_unstorable(k) or _unstorable(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_unstorable(v) for v in value)
    return False


class DomainErrorInvalidJson(DomainError):
    code = "invalid-json"
    kind = "invalid"
    title = "The body is not valid JSON"


class DomainErrorInvalidForm(DomainError):
    code = "invalid-form"
    kind = "invalid"
    title = "The body is not a valid form"


class NotFoundHandler(BaseHandler):
    """Tornado's default handler: every unknown address is a 404 problem."""

    def prepare(self) -> None:
        super().prepare()
        raise tornado.web.HTTPError(404)
