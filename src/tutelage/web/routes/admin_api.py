"""The JSON API of running a programme: projects, people, items, imports, progress, audit."""

from __future__ import annotations

import shutil
import tempfile
from functools import partial
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field
from starlette.background import BackgroundTask

from tutelage.formats import FORMATS, FormatError
from tutelage.interchange import export_project, import_file
from tutelage.records import Project, TaskKind
from tutelage.store import StoreError
from tutelage.web.deps import (
    AdminActor,
    Credentials,
    DbSession,
    get_store,
    request_credentials,
    require_admin,
)
from tutelage.web.params import Id, Limit
from tutelage.workspace import audit
from tutelage.workspace.accounts import Actor, create_user
from tutelage.workspace.audit import audit_entries
from tutelage.workspace.errors import WorkspaceError
from tutelage.workspace.items import build_items, mark_known_answers
from tutelage.workspace.membership import (
    add_member,
    new_project,
    remove_member,
    reset_qualification,
    set_expertise,
    update_project,
)
from tutelage.workspace.passwords import MAX_PASSWORD_BYTES
from tutelage.workspace.policy import visible_project
from tutelage.workspace.stats import project_stats

router = APIRouter(tags=["admin"])


def _admin_outside_a_transaction(
    request: Request, credentials: Annotated[Credentials, Depends(request_credentials)]
) -> Actor:
    """Authenticate in a short transaction of its own, for routes that run long ones
    (import, export): SQLite allows one writer, so the request must not hold another."""
    with get_store(request).session() as session:
        actor = credentials.actor(session)
    return require_admin(actor)


LongRunningAdmin = Annotated[Actor, Depends(_admin_outside_a_transaction)]


@router.post("/projects", status_code=201)
def create_project(project: Project, session: DbSession, actor: AdminActor) -> dict[str, Any]:
    row = new_project(session, actor=actor, project=project)
    return {"id": row.id, "name": row.name}


@router.put("/projects/{project_id}")
def put_project(
    project_id: Id, project: Project, session: DbSession, actor: AdminActor
) -> dict[str, Any]:
    row = update_project(session, actor=actor, project_id=project_id, project=project)
    return {"id": row.id, "name": row.name}


class NewUser(BaseModel):
    email: str = Field(max_length=320)
    handle: str = Field(max_length=200)
    password: str = Field(max_length=MAX_PASSWORD_BYTES)
    role: str = "expert"
    display_name: str = Field(default="", max_length=200)
    expertise: list[str] = Field(default_factory=list)


@router.post("/users", status_code=201)
def post_user(body: NewUser, session: DbSession, actor: AdminActor) -> dict[str, Any]:
    user = create_user(
        session,
        email=body.email,
        password=body.password,
        handle=body.handle,
        role=body.role,
        display_name=body.display_name,
        expertise=frozenset(body.expertise),
        actor_id=actor.user_id,
    )
    return {"id": user.id, "handle": user.handle, "role": user.role}


class Expertise(BaseModel):
    expertise: list[str]


@router.put("/users/{handle}/expertise", status_code=204)
def put_expertise(handle: str, body: Expertise, session: DbSession, actor: AdminActor) -> None:
    set_expertise(session, actor=actor, handle=handle, expertise=frozenset(body.expertise))


class Member(BaseModel):
    handle: str


@router.post("/projects/{project_id}/members", status_code=204)
def post_member(project_id: Id, body: Member, session: DbSession, actor: AdminActor) -> None:
    add_member(session, actor=actor, project_id=project_id, handle=body.handle)


@router.delete("/projects/{project_id}/members/{handle}", status_code=204)
def delete_member(project_id: Id, handle: str, session: DbSession, actor: AdminActor) -> None:
    remove_member(session, actor=actor, project_id=project_id, handle=handle)


@router.post("/projects/{project_id}/members/{handle}/qualification/reset", status_code=204)
def post_reset_qualification(
    project_id: Id, handle: str, session: DbSession, actor: AdminActor
) -> None:
    reset_qualification(session, actor=actor, project_id=project_id, handle=handle)


class BuildItems(BaseModel):
    kinds: list[TaskKind] | None = None  # default: the project's task kinds
    max_answers: int = Field(default=4, ge=2, le=10)
    redteam_slots: int = Field(default=0, ge=0, le=10_000)


@router.post("/projects/{project_id}/items")
def post_items(
    project_id: Id, body: BuildItems, session: DbSession, actor: AdminActor
) -> dict[str, int]:
    """Create the items the project's prompts and answers allow and it lacks."""
    project = visible_project(session, actor=actor, project_id=project_id)
    kinds = tuple(body.kinds or (TaskKind(kind) for kind in project.task_kinds))
    built = build_items(
        session,
        project_id=project_id,
        kinds=kinds,
        actor_id=actor.user_id,
        max_answers=body.max_answers,
        redteam_slots=body.redteam_slots,
    )
    return built.created


class KnownAnswers(BaseModel):
    purpose: str = Field(pattern="^(gold|qualification)$")
    count: int = Field(ge=1, le=100_000)
    source: str | None = None


@router.post("/projects/{project_id}/known-answers")
def post_known_answers(
    project_id: Id, body: KnownAnswers, session: DbSession, actor: AdminActor
) -> dict[str, int]:
    """Make gold or qualification items from imported pairs whose winner is known."""
    visible_project(session, actor=actor, project_id=project_id)
    made = mark_known_answers(
        session,
        project_id=project_id,
        purpose=body.purpose,
        count=body.count,
        source=body.source,
        actor_id=actor.user_id,
    )
    return {"made": made}


@router.post("/projects/{project_id}/imports", status_code=201)
def post_import(
    project_id: Id,
    request: Request,
    actor: LongRunningAdmin,
    file: Annotated[UploadFile, File()],
    format: Annotated[str | None, Form()] = None,
    source: Annotated[str | None, Form()] = None,
    skip_invalid: Annotated[bool, Form()] = False,
    only_new: Annotated[bool, Form()] = False,
) -> dict[str, Any]:
    """Import an uploaded file with the foundation's importers: all or nothing. Records an
    earlier import stored refuse the file, unless `only_new`, which stores the new ones."""
    store = get_store(request)
    # The import is its own transaction; this request holds no other (SQLite has one writer).
    with store.session() as session:
        name_of_project = visible_project(session, actor=actor, project_id=project_id).name
    name = Path(file.filename or "upload.jsonl").name
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / name
        with path.open("wb") as handle:
            shutil.copyfileobj(file.file, handle)
        try:
            report = import_file(
                store,
                path=path,
                project=name_of_project,
                fmt=format or None,
                source=source or None,
                skip_invalid=skip_invalid,
                only_new=only_new,
                before_commit=partial(
                    audit.record_import,
                    actor_id=actor.user_id,
                    project_id=project_id,
                    filename=name,
                ),
            )
        except (FormatError, StoreError) as exc:
            # Name the uploaded file, not the temporary folder it was saved in.
            message = str(exc).replace(f"{folder}/", "")
            raise WorkspaceError(f"nothing was imported: {message}", code="invalid_file") from exc
    return {
        "lines_read": report.lines_read,
        "stored": report.records_stored,
        "skipped": dict(report.skipped),
        "skipped_examples": [example.replace(folder, "") for example in report.skipped_examples],
        "format": report.format,
        "source": report.source,
    }


@router.get("/projects/{project_id}/stats")
def get_stats(project_id: Id, session: DbSession, actor: AdminActor) -> dict[str, Any]:
    """Progress, throughput, cost so far and to finish, and every expert's figures."""
    visible_project(session, actor=actor, project_id=project_id)
    stats = project_stats(session, project_id=project_id)
    return {
        "progress": stats.progress,
        "judgments_last_hour": stats.judgments_last_hour,
        "cost_so_far": str(stats.cost_so_far),
        "cost_per_judgment": None
        if stats.cost_per_judgment is None
        else str(stats.cost_per_judgment),
        "projected_cost_to_finish": None
        if stats.projected_cost_to_finish is None
        else str(stats.projected_cost_to_finish),
        "currency": stats.currency,
        "experts": [
            {
                "handle": e.handle,
                "items": e.items,
                "hours": round(e.hours, 4),
                "earnings": str(e.earnings),
                "gold_accuracy": e.gold_accuracy,
                "skipped": e.skipped,
            }
            for e in stats.experts
        ],
    }


@router.get("/projects/{project_id}/audit")
def get_audit(
    project_id: Id, session: DbSession, actor: AdminActor, limit: Limit = 200
) -> list[dict[str, Any]]:
    visible_project(session, actor=actor, project_id=project_id)
    return [
        {
            "at": entry.at.isoformat(),
            "actor_id": entry.actor_id,
            "action": entry.action,
            "target": entry.target,
            "details": entry.details,
        }
        for entry in audit_entries(session, project_id=project_id, limit=min(limit, 5000))
    ]


@router.get(
    "/projects/{project_id}/export",
    response_class=FileResponse,
    responses={
        200: {
            "description": "One JSON record per line.",
            "content": {"application/jsonl": {"schema": {"type": "string"}}},
        }
    },
)
def get_export(
    project_id: Id, request: Request, actor: LongRunningAdmin, format: str = "trl"
) -> FileResponse:
    """Download the project's comparisons (or prompts, for ``chat``) as JSONL."""
    if format not in FORMATS:
        raise WorkspaceError(f"unknown format {format!r}; known: {', '.join(FORMATS)}")
    store = get_store(request)
    with store.session() as session:
        name = visible_project(session, actor=actor, project_id=project_id).name
    folder = Path(tempfile.mkdtemp())
    out = folder / f"{name}-{format}.jsonl"
    export_project(store, project=name, fmt=format, out=out)
    return FileResponse(
        out,
        media_type="application/jsonl",
        filename=out.name,
        background=BackgroundTask(shutil.rmtree, folder, ignore_errors=True),
    )
