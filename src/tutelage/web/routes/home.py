"""The start page a signed-in user lands on."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from tutelage.web.deps import CurrentActor
from tutelage.web.pages import render

__all__ = ["router"]

router = APIRouter(include_in_schema=False)


@router.get("/")
def home(request: Request, actor: CurrentActor) -> HTMLResponse:
    return render(request, "home.html", actor=actor)
