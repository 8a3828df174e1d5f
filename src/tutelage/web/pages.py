"""Server-rendered pages: the Jinja2 environment and `render`, which every page route uses."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jinja2
from fastapi import Request
from starlette.responses import HTMLResponse
from starlette.templating import Jinja2Templates

from tutelage.workspace.accounts import Actor
from tutelage.workspace.rendering import render_markdown, render_plain

__all__ = ["STATIC_DIR", "TEMPLATES_DIR", "render"]

TEMPLATES_DIR = Path(__file__).parent / "templates"
STATIC_DIR = Path(__file__).parent / "static"

_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
    autoescape=True,
    # A misspelt variable fails loudly in tests instead of rendering as nothing.
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
# Untrusted text (model output, expert rewrites) goes through these, never `|safe`.
_env.filters["markdown"] = render_markdown
_env.filters["plain"] = render_plain
_templates = Jinja2Templates(env=_env)


def render(
    request: Request,
    name: str,
    context: Mapping[str, Any] | None = None,
    *,
    actor: Actor | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    """Return the template `name` as an HTML response; `actor` fills the navigation bar.

    Every template sees `actor`, `csrf_token` (the session's, for forms and fetch calls),
    `page_keys` (keyboard shortcuts for the help overlay) and `page_data` (JSON for the
    page's script), besides `context`.
    """
    values: dict[str, Any] = {
        "actor": actor,
        "csrf_token": actor.csrf_token if actor is not None else None,
        "page_keys": {},
        "page_data": None,
    }
    values.update(context or {})
    return _templates.TemplateResponse(request, name, values, status_code=status_code)
