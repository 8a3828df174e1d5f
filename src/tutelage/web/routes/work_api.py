"""The JSON API of expert work: projects, NDA, next task, judgments, skips, own stats."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Body, Header, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from tutelage.generation.backend import GenerationBackend
from tutelage.web.deps import (
    HOT_PATH_SECURITY,
    CurrentActor,
    DbSession,
    InTransaction,
    get_settings,
    get_store,
)
from tutelage.web.params import Id
from tutelage.workspace.accounts import Actor
from tutelage.workspace.directory import project_summary, visible_projects
from tutelage.workspace.errors import WorkspaceError
from tutelage.workspace.judging import Raced, submit_judgment
from tutelage.workspace.membership import accept_nda
from tutelage.workspace.policy import visible_project
from tutelage.workspace.queue import (
    accessible_assignment,
    next_task,
    own_assignment_with_item,
    skip_task,
)
from tutelage.workspace.redteam import answer_redteam_prompts
from tutelage.workspace.stats import expert_stats
from tutelage.workspace.submissions import Submission
from tutelage.workspace.views import task_view

router = APIRouter(tags=["work"])


@router.get("/projects")
def list_projects(session: DbSession, actor: CurrentActor) -> list[dict[str, Any]]:
    """The projects this person may see: all for admins, their own for everyone else."""
    return visible_projects(session, actor=actor)


@router.get("/projects/{project_id}")
def get_project(project_id: Id, session: DbSession, actor: CurrentActor) -> dict[str, Any]:
    project = visible_project(session, actor=actor, project_id=project_id)
    return project_summary(session, actor=actor, project=project)


@router.post("/projects/{project_id}/nda", status_code=204)
def accept_project_nda(project_id: Id, session: DbSession, actor: CurrentActor) -> None:
    """Accept the project's current NDA text (recorded with time and text hash)."""
    accept_nda(session, actor=actor, project_id=project_id)


@router.post("/projects/{project_id}/next", response_model=None, openapi_extra=HOT_PATH_SECURITY)
async def lease_next_task(project_id: Id, work: InTransaction) -> Response:
    """Lease the next item to judge (the same one again if one is held); 204 when none is left."""

    def lease(session: Session, actor: Actor) -> dict[str, Any] | None:
        assignment = next_task(session, actor=actor, project_id=project_id)
        return None if assignment is None else task_view(session, assignment=assignment).as_json()

    view = await work(lease)
    # JSONResponse: the view is plain JSON already, and FastAPI's encoder would walk it
    return Response(status_code=204) if view is None else JSONResponse(view)


@router.get("/assignments/{assignment_id}")
def get_assignment(assignment_id: Id, session: DbSession, actor: CurrentActor) -> dict[str, Any]:
    assignment = accessible_assignment(session, actor=actor, assignment_id=assignment_id)
    return {**task_view(session, assignment=assignment).as_json(), "status": assignment.status}


@router.post(
    "/assignments/{assignment_id}/judgment",
    status_code=201,
    response_model=None,
    openapi_extra=HOT_PATH_SECURITY,
)
async def post_judgment(
    assignment_id: Id,
    submission: Annotated[Submission, Body()],
    request: Request,
    background: BackgroundTasks,
    work: InTransaction,
    idempotency_key: Annotated[
        str | None,
        Header(
            min_length=1,
            max_length=100,
            pattern=r"^[\x21-\x7e]+$",
            description="1-100 printable ASCII characters, new for each judgment",
        ),
    ] = None,
    next: bool = False,
) -> JSONResponse:
    """Store a judgment; answered only once it is committed. Retries with the same
    Idempotency-Key header get the first answer and store nothing. With ``?next=true`` the
    answer also carries the expert's next item (leased in the same transaction) under
    ``next`` (null when none is left), so the page moves on in one round trip. A red-team
    prompt gets candidate answers afterwards when the server has a generation model."""

    recheck = False

    def judge(session: Session, actor: Actor) -> tuple[dict[str, Any], int]:
        # held here, with its item, so that submit_judgment finds both in the session and
        # not in the database (the session keeps only weak references): one statement
        assignment, _item = own_assignment_with_item(
            session, actor=actor, assignment_id=assignment_id
        )
        project_id = assignment.project_id
        receipt = submit_judgment(
            session,
            actor=actor,
            assignment_id=assignment_id,
            submission=submission,
            idempotency_key=idempotency_key,
            recheck=recheck,
        )
        if not next:
            return receipt, project_id
        try:
            following = next_task(session, actor=actor, project_id=project_id)
        except WorkspaceError as exc:  # e.g. the qualification just failed: the page says so
            error = {"error": exc.code, "message": exc.message}
            return {**receipt, "next": None, "next_error": error}, project_id
        view = None if following is None else task_view(session, assignment=following).as_json()
        return {**receipt, "next": view}, project_id

    try:
        answer, project_id = await work(judge)
    except Raced:  # a concurrent request won (PostgreSQL): once more finds what it stored
        recheck = True
        answer, project_id = await work(judge)
    backend = generation_backend(request)
    if submission.kind == "redteam" and backend is not None:
        background.add_task(
            answer_redteam_prompts, get_store(request), project_id=project_id, backend=backend
        )
    return JSONResponse(answer, status_code=201, background=background)


def generation_backend(request: Request) -> GenerationBackend | None:
    """Return the server's generation back end, made once, or None when none is set."""
    model = get_settings(request).generation_model
    if not model:
        return None
    cached: GenerationBackend | None = getattr(request.app.state, "generation_backend", None)
    if cached is None:
        from tutelage.generation import backend_for

        cached = backend_for(model)
        request.app.state.generation_backend = cached
    return cached


class SkipRequest(BaseModel):
    reason: str = Field(min_length=1, max_length=2000)


@router.post("/assignments/{assignment_id}/skip", status_code=204)
def post_skip(
    assignment_id: Id, body: SkipRequest, session: DbSession, actor: CurrentActor
) -> None:
    skip_task(session, actor=actor, assignment_id=assignment_id, reason=body.reason)


@router.get("/projects/{project_id}/me")
def my_stats(project_id: Id, session: DbSession, actor: CurrentActor) -> dict[str, Any]:
    """Own hours, items, earnings at the project rate, and gold accuracy."""
    visible_project(session, actor=actor, project_id=project_id)
    stats = expert_stats(session, project_id=project_id, user_id=actor.user_id, handle=actor.handle)
    return {
        "items": stats.items,
        "hours": round(stats.hours, 4),
        "earnings": str(stats.earnings),
        "currency": stats.currency,
        "gold_accuracy": stats.gold_accuracy,
        "skipped": stats.skipped,
    }
