"""Failures as responses: JSON `{"error": code, "message": ...}` under /api/, a page elsewhere.

A page that needs a signed-in user answers an unauthenticated browser with a redirect to
the sign-in page instead of an error.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from sqlalchemy.exc import DataError, IntegrityError
from starlette.exceptions import HTTPException

from tutelage.formats import FormatError
from tutelage.store import StoreError
from tutelage.web.deps import SESSION_COOKIE, clear_session_cookie, get_settings, login_url
from tutelage.web.headers import SECURITY_HEADERS
from tutelage.web.pages import render
from tutelage.workspace.errors import Unauthenticated, WorkspaceError
from tutelage.workspace.throttling import Throttled

__all__ = ["error_response", "install_error_handlers", "is_api_request"]


def is_api_request(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def error_response(
    request: Request,
    *,
    status: int,
    code: str,
    message: str,
    fields: list[dict[str, str]] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """Return an error as JSON for the API, or as the error page for a browser."""
    if is_api_request(request):
        body: dict[str, Any] = {"error": code, "message": message}
        if fields:
            body["fields"] = fields
        return JSONResponse(body, status_code=status, headers=headers)
    response = render(
        request,
        "error.html",
        {"status": status, "code": code, "message": message, "fields": fields or []},
        status_code=status,
    )
    response.headers.update(headers or {})
    return response


async def _workspace_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, WorkspaceError)
    if isinstance(exc, Unauthenticated) and not is_api_request(request):
        response = RedirectResponse(login_url(request), status_code=303)
        if SESSION_COOKIE in request.cookies:  # expired or ended: drop it
            clear_session_cookie(response, get_settings(request))
        return response
    headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, Throttled) else None
    return error_response(
        request, status=exc.status, code=exc.code, message=exc.message, headers=headers
    )


async def _out_of_range(request: Request, exc: Exception) -> Response:
    # The route's types bound what they accept (tutelage.web.params); this catches a number
    # that got past them, so that the store's refusal is a 422, never a 500.
    return error_response(
        request,
        status=422,
        code="invalid_request",
        message="invalid request: a number is out of the range the store can hold",
    )


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    fields = []
    for detail in exc.errors():
        # ("body", "email") -> "email"; the submitted value is never echoed (passwords).
        location = [str(part) for part in detail.get("loc", ())]
        name = ".".join(location[1:] if len(location) > 1 else location)
        fields.append({"field": name, "message": str(detail.get("msg", "invalid"))})
    message = "invalid request: " + "; ".join(f"{f['field']}: {f['message']}" for f in fields)
    return error_response(
        request, status=422, code="invalid_request", message=message, fields=fields
    )


async def _store_error(request: Request, exc: Exception) -> Response:
    return error_response(request, status=400, code="store", message=str(exc))


async def _integrity_error(request: Request, exc: Exception) -> Response:
    # A service checks what it can; this catches the rest (a race on a unique name, an id of
    # something that does not exist) without showing SQL to the user.
    return error_response(
        request,
        status=409,
        code="conflict",
        message="the change conflicts with what is stored (a duplicate, or a reference to "
        "something that does not exist)",
    )


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    phrase = HTTPStatus(exc.status_code).phrase
    message = exc.detail if isinstance(exc.detail, str) and exc.detail != phrase else phrase
    return error_response(
        request,
        status=exc.status_code,
        code=phrase.lower().replace(" ", "_").replace("-", "_"),
        message=message,
        headers=dict(exc.headers or {}),
    )


async def _unexpected_error(request: Request, exc: Exception) -> Response:
    # Runs outside the middleware stack, so the security headers are added here.
    response = error_response(
        request,
        status=500,
        code="internal_error",
        message="something went wrong on the server; the details are in its log",
    )
    response.headers.update(SECURITY_HEADERS)
    return response


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(WorkspaceError, _workspace_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StoreError, _store_error)
    app.add_exception_handler(FormatError, _store_error)  # a file that cannot be read: 400
    app.add_exception_handler(IntegrityError, _integrity_error)
    app.add_exception_handler(DataError, _out_of_range)  # PostgreSQL: integer out of range
    app.add_exception_handler(OverflowError, _out_of_range)  # SQLite: int too large
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)
