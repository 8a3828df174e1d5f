"""Text no store can hold is refused before any route sees it: a NUL or an unpaired
surrogate in a path or query parameter, a form field or a JSON body is a 422 that names
where it is, on SQLite and PostgreSQL alike (PostgreSQL would fail with a 500 deep in a
write, and SQLite store what PostgreSQL cannot)."""

from __future__ import annotations

import json

from fastapi import Request

from tutelage.storable import find_unstorable
from tutelage.workspace.errors import Invalid

__all__ = ["refuse_unstorable_input"]

_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def _refuse(found: tuple[str, str] | None) -> None:
    if found is not None:
        where, problem = found
        raise Invalid(f"{where} holds {problem}", code="unstorable_text")


async def refuse_unstorable_input(request: Request) -> None:
    """An app-wide dependency. A JSON body is parsed again only when it holds a ``\\u``
    escape: a raw NUL or lone surrogate cannot reach a JSON string any other way (raw,
    it is not valid JSON or not valid UTF-8, which the route's own parsing refuses)."""
    for name, value in request.path_params.items():
        _refuse(find_unstorable(value, f"path parameter '{name}'"))
    for name, value in request.query_params.multi_items():
        _refuse(find_unstorable(value, f"query parameter '{name}'"))
    content_type = request.headers.get("content-type", "")
    if content_type.startswith(_FORM_TYPES):
        for name, value in (await request.form()).multi_items():
            if isinstance(value, str):
                _refuse(find_unstorable(value, f"form field '{name}'"))
    elif content_type.startswith("application/json"):
        body = await request.body()
        if b"\\u" in body:
            try:
                parsed = json.loads(body)
            except ValueError:
                return  # malformed: the route's own parsing answers 422
            _refuse(find_unstorable(parsed, "body"))
