"""The expert's pages: my projects, a project's NDA and start page, the work page, my stats.

The work page renders its first item on the server; `static/work.js` then judges, leases
and renders the following items in the page from the JSON API (`routes/work_api.py`), with
the `<template>` elements this page carries, so moving on costs no page load.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from tutelage.records import TaskKind
from tutelage.store.tables import ProjectRow
from tutelage.store.workspace_tables import MembershipRow
from tutelage.web.deps import CurrentActor, DbSession
from tutelage.web.pages import render
from tutelage.web.params import Id
from tutelage.workspace.accounts import Actor
from tutelage.workspace.directory import visible_projects
from tutelage.workspace.errors import NeedsNda, NeedsQualification
from tutelage.workspace.membership import accept_nda
from tutelage.workspace.policy import accepted_current_nda, membership, visible_project
from tutelage.workspace.queue import held_task, next_task
from tutelage.workspace.rendering import HIGHLIGHT_CSS
from tutelage.workspace.stats import expert_stats
from tutelage.workspace.views import task_view

__all__ = ["router"]

router = APIRouter(include_in_schema=False)

Status = Literal["not_member", "nda", "qualification", "failed", "ready"]

TASK_KINDS = [kind.value for kind in TaskKind]
HOME_KEYS = {"1-9": "open the project with that number"}
NDA_KEYS = {"Enter": "accept the NDA", "p": "back to my projects"}
START_KEYS = {"Enter": "start", "m": "my stats", "p": "my projects"}
STATS_KEYS = {"p": "my projects"}


def _status(
    member: MembershipRow | None, *, nda_accepted: bool, qualification_required: bool
) -> Status:
    """Where an expert stands in a project: what they must do before judging real items."""
    if member is None:
        return "not_member"
    if not nda_accepted:
        return "nda"
    if qualification_required and member.qualified_at is None:
        return "failed" if member.qualification_score is not None else "qualification"
    return "ready"


@router.get("/")
def projects_page(request: Request, session: DbSession, actor: CurrentActor) -> HTMLResponse:
    """The projects I may see, each with what I must do next there."""
    projects = [
        {
            **project,
            "status": _status(
                membership(session, actor=actor, project_id=project["id"]),
                nda_accepted=project["nda_accepted"],
                qualification_required=project["qualification_required"],
            ),
        }
        for project in visible_projects(session, actor=actor)
    ]
    context = {"projects": projects, "page_keys": HOME_KEYS}
    return render(request, "projects.html", context, actor=actor)


@router.get("/projects/{project_id}")
def project_page(
    project_id: Id, request: Request, session: DbSession, actor: CurrentActor
) -> HTMLResponse:
    """The NDA to accept, or the project's instructions, rubric, my stats and Start."""
    project = visible_project(session, actor=actor, project_id=project_id)
    member = membership(session, actor=actor, project_id=project_id)
    status = _status(
        member,
        nda_accepted=accepted_current_nda(session, actor=actor, project=project),
        qualification_required=project.qualification_pass_mark is not None,
    )
    if status == "nda":
        context: dict[str, Any] = {"project": project, "page_keys": NDA_KEYS}
        return render(request, "work_nda.html", context, actor=actor)
    stats = expert_stats(session, project_id=project_id, user_id=actor.user_id, handle=actor.handle)
    context = {"project": project, "status": status, "stats": stats, "page_keys": START_KEYS}
    return render(request, "work_start.html", context, actor=actor)


@router.post("/projects/{project_id}/nda")
def accept_nda_form(project_id: Id, session: DbSession, actor: CurrentActor) -> RedirectResponse:
    """Accept the NDA from its page's form (the CSRF token is checked with the session)."""
    accept_nda(session, actor=actor, project_id=project_id)
    return RedirectResponse(f"/projects/{project_id}", status_code=303)


def _unqualified(
    request: Request, project: ProjectRow, exc: NeedsQualification, actor: Actor
) -> HTMLResponse:
    context: dict[str, Any] = {"project": project, "message": exc.message, "page_keys": STATS_KEYS}
    return render(request, "work_unqualified.html", context, actor=actor, status_code=403)


@router.get("/projects/{project_id}/work", response_model=None)
def work_page(
    project_id: Id, request: Request, session: DbSession, actor: CurrentActor
) -> HTMLResponse | RedirectResponse:
    """The item I hold. Loading this page changes nothing (a prefetching browser or a link
    checker takes no lease): without a held item it sends me to the project's page, whose
    Start button posts for one."""
    project = visible_project(session, actor=actor, project_id=project_id)
    try:
        assignment = held_task(session, actor=actor, project_id=project_id)
    except NeedsNda:
        return RedirectResponse(f"/projects/{project_id}", status_code=303)
    except NeedsQualification as exc:
        return _unqualified(request, project, exc, actor)
    if assignment is None:
        return RedirectResponse(f"/projects/{project_id}", status_code=303)
    task = task_view(session, assignment=assignment).as_json()
    context = {
        "project": project,
        "task": task,
        "kinds": TASK_KINDS,
        "page_data": {"project_id": project.id, "task": task},
    }
    return render(request, "work.html", context, actor=actor)


@router.post("/projects/{project_id}/work", response_model=None)
def take_next_form(
    project_id: Id, request: Request, session: DbSession, actor: CurrentActor
) -> HTMLResponse | RedirectResponse:
    """Start: lease my next item (or keep the one I hold) and show it, or say all is done."""
    project = visible_project(session, actor=actor, project_id=project_id)
    try:
        assignment = next_task(session, actor=actor, project_id=project_id)
    except NeedsNda:
        return RedirectResponse(f"/projects/{project_id}", status_code=303)
    except NeedsQualification as exc:
        return _unqualified(request, project, exc, actor)
    if assignment is None:
        return render(request, "work_done.html", {"project": project}, actor=actor)
    return RedirectResponse(f"/projects/{project_id}/work", status_code=303)


@router.get("/projects/{project_id}/me")
def stats_page(
    project_id: Id, request: Request, session: DbSession, actor: CurrentActor
) -> HTMLResponse:
    """My hours, items, earnings at the project's rate, and gold accuracy."""
    project = visible_project(session, actor=actor, project_id=project_id)
    stats = expert_stats(session, project_id=project_id, user_id=actor.user_id, handle=actor.handle)
    context = {"project": project, "stats": stats, "page_keys": STATS_KEYS}
    return render(request, "work_stats.html", context, actor=actor)


# Code in answers is highlighted on the server with these classes; the stylesheet lives
# with the renderer (workspace/static), which the /static mount does not serve.
@router.get("/static/highlight.css")
def highlight_css() -> Response:
    return Response(HIGHLIGHT_CSS, media_type="text/css")
