"""The OpenAPI document, with every error an operation can answer and its body's shape.

FastAPI documents a route's success and a 422 in its own `{"detail": ...}` shape. The
API's errors all come as `{"error": code, "message": ..., "fields"?: [...]}` (see
`tutelage.web.errors`), with statuses that follow from what the route depends on: a
signed-in actor (401; 403 for a role, a project's NDA or membership, or a missing CSRF
token), ids in its path or body (404), parameters or a body (400 for a request the
workspace refuses, 422 for one that is malformed), a write (409 for a conflict), and the
sign-in (429 while throttled, with Retry-After). This derives them from each route's
dependencies rather than listing them by hand on sixty routes, where they would drift;
`tests/test_api_fuzz.py` checks the document against what the server answers.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

__all__ = ["install_openapi"]

ERROR_SCHEMA = {
    "title": "Error",
    "type": "object",
    "required": ["error", "message"],
    "properties": {
        "error": {"type": "string", "description": "A stable code, e.g. `not_found`."},
        "message": {"type": "string", "description": "What went wrong, for people."},
        "fields": {
            "type": "array",
            "description": "For a 422: each field that was refused, and why.",
            "items": {
                "type": "object",
                "required": ["field", "message"],
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
}

_WHY = {
    "400": "The workspace refused the request (the message says why).",
    "401": "Not signed in, or the session or token has ended.",
    "403": "Signed in, but not allowed: role, membership, NDA, qualification or CSRF token.",
    "404": "Nothing with that id or name (or not visible to you).",
    "409": "The change conflicts with what is stored.",
    "422": "The request is malformed: a field is missing, out of range or not storable.",
    "429": "Too many failed sign-ins: wait for `Retry-After` seconds.",
}
_AUTH = {"request_credentials", "current_actor", "in_transaction"}
_WRITES = {"POST", "PUT", "PATCH", "DELETE"}


def _calls(dependant: Dependant) -> Iterator[str]:
    for sub in dependant.dependencies:
        if sub.call is not None:
            yield getattr(sub.call, "__name__", "")
        yield from _calls(sub)


def _names_something(route: APIRoute) -> bool:
    """Whether the body names a stored thing (an id, a handle) that may not exist."""
    body = route.body_field
    model = getattr(body.field_info, "annotation", None) if body is not None else None
    fields = getattr(model, "model_fields", {})
    return any(name.endswith("_id") or name == "handle" for name in fields)


def _errors(route: APIRoute) -> set[str]:
    if route.path.endswith("/auth/login"):
        return {"400", "401", "422", "429"}
    dependant = route.dependant
    takes = bool(
        dependant.path_params
        or dependant.query_params
        or dependant.header_params
        or route.body_field is not None
    )
    codes = {"422"} if takes else set()
    if set(_calls(dependant)) & _AUTH:
        codes |= {"401", "403"}
    if dependant.path_params or _names_something(route):
        codes |= {"404"}
    if dependant.path_params or route.body_field is not None:
        codes |= {"400"}
    if (route.methods or set()) & _WRITES:
        codes |= {"400", "409", "422"}
    return codes


def install_openapi(app: FastAPI, routers: list[tuple[str, APIRouter]]) -> None:
    """Make `app.openapi()` document the errors of each operation of `routers` (each with
    the prefix it is included under), as described above."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = get_openapi(
            title=app.title, version=app.version, routes=app.routes, description=__doc__
        )
        components = document.setdefault("components", {}).setdefault("schemas", {})
        components["Error"] = ERROR_SCHEMA
        by_path = {
            (prefix + route.path_format, method.lower()): route
            for prefix, router in routers
            for route in router.routes
            if isinstance(route, APIRoute)
            for method in route.methods or ()
        }
        for path, operations in document.get("paths", {}).items():
            for method, operation in operations.items():
                route = by_path.get((path, method))
                if route is None:
                    raise RuntimeError(f"{method.upper()} {path}: not among the API's routers")
                responses = operation.setdefault("responses", {})
                for code in sorted(_errors(route)):
                    responses[code] = {
                        "description": _WHY[code],
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}
                        },
                        **(
                            {"headers": {"Retry-After": {"schema": {"type": "integer"}}}}
                            if code == "429"
                            else {}
                        ),
                    }
        # FastAPI's own 422 shape is never sent: ours replaces it everywhere.
        for name in ("HTTPValidationError", "ValidationError"):
            components.pop(name, None)
        app.openapi_schema = document
        return document

    app.openapi = openapi  # type: ignore[method-assign]
