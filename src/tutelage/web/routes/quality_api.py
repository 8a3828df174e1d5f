"""The JSON API of quality: the report, exclusions (admins) and adjudication (reviewers)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from tutelage.quality.decisions import (
    Exclusion,
    adjudicate,
    exclude_expert,
    exclusions,
    include_expert,
)
from tutelage.quality.persist import QueueItem, adjudication_queue, adjudication_queue_size
from tutelage.quality.report import report_json
from tutelage.records import ComparisonOutcome
from tutelage.store.quality_tables import ExclusionRow
from tutelage.store.tables import UserRow
from tutelage.web.deps import AdminActor, DbSession, ReviewerActor, get_store
from tutelage.web.params import BodyId, Id
from tutelage.web.quality_snapshots import compute_snapshot
from tutelage.web.routes.admin_api import LongRunningAdmin
from tutelage.workspace.errors import Conflict, NotFound
from tutelage.workspace.policy import reviewable_project, visible_project

router = APIRouter(tags=["quality"])


@router.get("/projects/{project_id}/quality")
def get_quality(
    project_id: Id,
    request: Request,
    actor: LongRunningAdmin,
    bootstrap: Annotated[int, Query(ge=0, le=10_000)] = 1000,
) -> dict[str, Any]:
    """Compute the project's quality report now (agreement, consensus per item, experts,
    flags) without storing its consensus labels."""
    store = get_store(request)
    with store.session() as session:
        visible_project(session, actor=actor, project_id=project_id)
    quality, _ = compute_snapshot(store, project_id=project_id, save=False, bootstrap=bootstrap)
    return report_json(quality)


@router.post("/projects/{project_id}/quality/recompute")
def recompute_quality(
    project_id: Id,
    request: Request,
    actor: LongRunningAdmin,
    bootstrap: Annotated[int, Query(ge=0, le=10_000)] = 1000,
) -> dict[str, Any]:
    """Compute the report and store the consensus labels datasets and reviewers read."""
    store = get_store(request)
    with store.session() as session:
        visible_project(session, actor=actor, project_id=project_id)
    quality, _ = compute_snapshot(store, project_id=project_id, save=True, bootstrap=bootstrap)
    return report_json(quality)


def _exclusion(exclusion: Exclusion) -> dict[str, Any]:
    shown = asdict(exclusion)
    for key in ("excluded_at", "lifted_at"):
        shown[key] = None if shown[key] is None else shown[key].isoformat()
    shown["in_force"] = exclusion.in_force
    return shown


def _one(session: Session, project_id: int, exclusion_id: int) -> dict[str, Any]:
    return next(
        _exclusion(x) for x in exclusions(session, project_id=project_id) if x.id == exclusion_id
    )


@router.get("/projects/{project_id}/quality/exclusions")
def get_exclusions(project_id: Id, session: DbSession, actor: AdminActor) -> list[dict[str, Any]]:
    """Every exclusion of the project, newest first, undone ones included."""
    visible_project(session, actor=actor, project_id=project_id)
    return [_exclusion(x) for x in exclusions(session, project_id=project_id)]


class NewExclusion(BaseModel):
    handle: str = Field(min_length=1, max_length=200)
    reason: str = Field(max_length=20_000)


@router.post("/projects/{project_id}/quality/exclusions", status_code=201)
def post_exclusion(
    project_id: Id, body: NewExclusion, session: DbSession, actor: AdminActor
) -> dict[str, Any]:
    """Leave an expert's judgments out of agreement, consensus and datasets; a reason is
    required. The figures and stored consensus change when next recomputed."""
    visible_project(session, actor=actor, project_id=project_id)
    user = session.scalar(select(UserRow).where(UserRow.handle == body.handle.strip()))
    if user is None:
        raise NotFound(f"no account with the handle {body.handle.strip()!r}")
    row = exclude_expert(
        session, actor=actor, project_id=project_id, user_id=user.id, reason=body.reason
    )
    return _one(session, project_id, row.id)


class Lift(BaseModel):
    reason: str = Field(default="", max_length=20_000)


@router.post("/projects/{project_id}/quality/exclusions/{exclusion_id}/lift")
def lift_exclusion(
    project_id: Id,
    exclusion_id: Id,
    session: DbSession,
    actor: AdminActor,
    body: Lift | None = None,
) -> dict[str, Any]:
    """Undo an exclusion: the expert's judgments count again."""
    visible_project(session, actor=actor, project_id=project_id)
    row = session.get(ExclusionRow, exclusion_id)
    if row is None or row.project_id != project_id:
        raise NotFound(f"no exclusion {exclusion_id} in project {project_id}")
    if row.lifted_at is not None:
        raise Conflict(f"exclusion {exclusion_id} was undone already")
    include_expert(
        session,
        actor=actor,
        project_id=project_id,
        user_id=row.user_id,
        reason=body.reason if body else "",
    )
    return _one(session, project_id, exclusion_id)


def _queued(item: QueueItem) -> dict[str, Any]:
    shown = asdict(item)
    shown["computed_at"] = item.computed_at.isoformat()
    return shown


@router.get("/projects/{project_id}/adjudications/queue")
def get_adjudication_queue(
    project_id: Id,
    session: DbSession,
    actor: ReviewerActor,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    """The items whose stored consensus confidence is below the project's threshold, least
    sure first: prompt, answers (raw text; labels in the item's own order) and every
    judgment with its rationale, never who made it."""
    reviewable_project(session, actor=actor, project_id=project_id)
    return {
        "waiting": adjudication_queue_size(session, project_id=project_id),
        "items": [
            _queued(item)
            for item in adjudication_queue(session, project_id=project_id, limit=limit)
        ],
    }


class Adjudication(BaseModel):
    item_id: BodyId
    label: ComparisonOutcome
    note: str = Field(default="", max_length=20_000)


@router.post("/projects/{project_id}/adjudications", status_code=201)
def post_adjudication(
    project_id: Id, body: Adjudication, session: DbSession, actor: ReviewerActor
) -> dict[str, Any]:
    """Record the final label of an item (in its own order); final: a second is refused (409)."""
    reviewable_project(session, actor=actor, project_id=project_id)
    row = adjudicate(
        session,
        actor=actor,
        project_id=project_id,
        item_id=body.item_id,
        label=body.label.value,
        note=body.note,
    )
    return {
        "id": row.id,
        "item_id": row.item_id,
        "label": row.label,
        "note": row.note,
        "reviewer": actor.handle,
        "created_at": row.created_at.isoformat(),
    }
