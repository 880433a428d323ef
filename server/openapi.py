"""OpenAPI 3.1 document built from the route list: every route appears, with
the request and response schemas its handler declares in ``openapi``."""

from __future__ import annotations

import re
from typing import Any

from server.http import Route

PROBLEM = {
    "type": "object",
    "required": ["type", "title", "status", "detail", "code", "request_id"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "code": {"type": "string"},
        "request_id": {"type": "string"},
    },
}


def obj(required: list[str] | None = None, **props: Any) -> dict[str, Any]:
    """A JSON object schema: ``obj(["a"], a=STR, b=INT)``."""
    schema: dict[str, Any] = {"type": "object", "properties": props}
    if required:
        schema["required"] = required
    return schema


STR: dict[str, Any] = {"type": "string"}
INT: dict[str, Any] = {"type": "integer"}
BOOL: dict[str, Any] = {"type": "boolean"}
ANY_OBJ: dict[str, Any] = {"type": "object"}
NULLABLE_STR: dict[str, Any] = {"type": ["string", "null"]}
NULLABLE_INT: dict[str, Any] = {"type": ["integer", "null"]}


def qint(name: str, lo: int, hi: int) -> tuple[str, dict[str, Any]]:
    """A whole-number query parameter, as ``BaseHandler.query_int(name, _, lo, hi)`` reads it
    (empty means the default, as if absent)."""
    number = {"type": "integer", "minimum": lo, "maximum": hi}
    return name, {"anyOf": [number, {"type": "string", "maxLength": 0}]}


def arr(items: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": items}


def op(
    summary: str,
    *,
    tag: str,
    request: dict[str, Any] | None = None,
    response: dict[str, Any] | None = None,
    status: int = 200,
    auth: str | None = None,
    errors: tuple[int, ...] = (),
    content_type: str = "application/json",
    request_type: str = "application/json",
    query: tuple[str | tuple[str, dict[str, Any]], ...] = (),
) -> dict[str, Any]:
    """One operation. ``query`` names parameters, each a string unless given as
    ``(name, schema)``; the errors every operation can give are added (see below)."""
    operation: dict[str, Any] = {"summary": summary, "tags": [tag]}
    if request is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {request_type: {"schema": request}},
        }
    ok: dict[str, Any] = {"description": "Success"}
    if response is not None:
        ok["content"] = {content_type: {"schema": response}}
    responses: dict[str, Any] = {str(status): ok}
    implied = {503}  # dependency-unavailable: PostgreSQL or Redis down, on any route
    if request is not None:
        implied |= {400, 422}  # a body that is not JSON / not the declared type; a bad field
    if query:
        implied.add(422)  # a bad query parameter
    if auth is not None:
        implied.add(401)  # no token, or a bad one (also where sign-in is optional)
    for code in sorted({*errors, *implied}):
        responses[str(code)] = {"$ref": "#/components/responses/Problem"}
    operation["responses"] = responses
    if auth == "user":
        operation["security"] = [{"bearer": []}]
    elif auth == "client":
        operation["security"] = [{"bearer": []}, {"clientBasic": []}]
    elif auth == "optional":  # anonymous or signed in: the answer depends on who asks
        operation["security"] = [{}, {"bearer": []}]
    if query:
        operation["parameters"] = [
            {"name": q, "in": "query", "required": False, "schema": STR}
            if isinstance(q, str)
            else {"name": q[0], "in": "query", "required": False, "schema": q[1]}
            for q in query
        ]
    return operation


def build_spec(routes: list[Route], *, server_url: str) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for r in routes:
        path = r.openapi_path
        item: dict[str, Any] = {}
        declared = getattr(r.handler, "openapi", {}) or {}
        for method, operation in declared.items():
            item[method] = dict(operation)
        if not item:
            item["get"] = {"summary": r.template, "responses": {"200": {"description": "OK"}}}
        params = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in re.findall(r"\{([a-z_]+)\}", path)
        ]
        if params:
            item["parameters"] = params
        paths[path] = item
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "City super-app gateway",
            "version": "1.0.0",
            "description": "One identity, one way to pay, one certificate wallet and the "
            "gateway to thousands of mini-apps. Errors are RFC 9457 problem details "
            "with a stable `code`.",
        },
        "servers": [{"url": server_url}],
        "paths": paths,
        "components": {
            "schemas": {"Problem": PROBLEM},
            "responses": {
                "Problem": {
                    "description": "An RFC 9457 problem",
                    "content": {"application/problem+json": {"schema": PROBLEM}},
                }
            },
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                "clientBasic": {"type": "http", "scheme": "basic"},
            },
        },
    }
