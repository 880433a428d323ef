"""RFC 9457 problem details: the one table from error kinds to HTTP statuses,
and the rendering every error response goes through."""

from __future__ import annotations

from typing import Any

from identity.errors import DomainError

STATUS_BY_KIND: dict[str, int] = {
    "invalid": 400,
    "unauthorized": 401,
    "forbidden": 403,
    "not_found": 404,
    "conflict": 409,
    "gone": 410,
    "unprocessable": 422,
    "rate_limited": 429,
    "bad_gateway": 502,
    "unavailable": 503,
    "timeout": 504,
}

# Framework-level errors (raised as tornado HTTPError) and their stable codes.
CODE_BY_STATUS: dict[int, tuple[str, str]] = {
    400: ("bad-request", "Bad request"),
    401: ("unauthorized", "Authentication required"),
    403: ("forbidden", "Not allowed"),
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
    411: ("length-required", "Length required"),
    413: ("payload-too-large", "Payload too large"),
    415: ("unsupported-media-type", "Unsupported media type"),
    429: ("rate-limited", "Too many requests"),
    500: ("internal-error", "Internal server error"),
    503: ("dependency-unavailable", "Service unavailable"),
}

PROBLEM_BASE = "https://superapp.example/problems/"


def problem(
    status: int, code: str, title: str, detail: str, request_id: str, **extra: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + code,
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
        "request_id": request_id,
    }
    for key, value in extra.items():
        if key not in body and key != "retry_after":
            body[key] = value
    return body


def from_domain(exc: DomainError, request_id: str) -> dict[str, Any]:
    status = STATUS_BY_KIND.get(exc.kind, 400)
    return problem(status, exc.code, exc.title, exc.detail, request_id, **exc.extra)


def from_status(status: int, request_id: str, detail: str | None = None) -> dict[str, Any]:
    code, title = CODE_BY_STATUS.get(status, ("error", "Error"))
    if status >= 500:
        detail = "The server could not complete the request." if status == 500 else detail
    return problem(status, code, title, detail or title, request_id)
