"""Quality pages: the admin's view of a project's agreement, consensus, experts and flags,
with exclusions; and the reviewers' adjudication queue.

The admin's page shows the last computation (see `web/quality_snapshots.py`) and what
changed since; Recompute makes a new one and stores the consensus labels. Computing runs
outside any request transaction: SQLite has one writer, and experts keep submitting.
The reviewers' queue shows each doubtful item with every judgment and rationale, but
never who made them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tutelage.quality.decisions import adjudicate, exclude_expert, exclusions, include_expert
from tutelage.quality.load import excluded_workers
from tutelage.quality.persist import QueueItem, adjudication_queue, adjudication_queue_size
from tutelage.store.quality_tables import ConsensusLabelRow, ExclusionRow
from tutelage.store.tables import ProjectRow, UserRow
from tutelage.store.workspace_tables import MembershipRow
from tutelage.web.deps import AdminActor, DbSession, ReviewerActor, get_store
from tutelage.web.pages import render
from tutelage.web.params import Id
from tutelage.web.quality_snapshots import (
    CHARTS,
    Snapshot,
    changes_since,
    chart,
    compute_snapshot,
    read_snapshot,
)
from tutelage.web.routes.admin_api import LongRunningAdmin
from tutelage.workspace.accounts import Actor
from tutelage.workspace.directory import visible_projects
from tutelage.workspace.errors import Conflict, NeedsNda, NotFound, WorkspaceError
from tutelage.workspace.membership import accept_nda
from tutelage.workspace.policy import reviewable_project, visible_project
from tutelage.workspace.rendering import render_markdown

__all__ = ["LABEL_NAMES", "router"]

router = APIRouter(include_in_schema=False)

Text = Annotated[str, Form(max_length=1024)]
LongText = Annotated[str, Form(max_length=20_000)]

QUEUE_PAGE = 20
_DONE_CHARS = 300
LABEL_NAMES = {"a": "A is better", "b": "B is better", "tie": "Tie", "both_bad": "Both bad"}
_STATISTICS = {
    "outcome_alpha": "Krippendorff's alpha, outcome (nominal)",
    "strength_alpha": "Krippendorff's alpha, strength (ordinal)",
    "fleiss_kappa": "Fleiss' kappa, outcome",
}


def _done(path: str, message: str) -> RedirectResponse:
    return RedirectResponse(f"{path}?{urlencode({'done': message})}", status_code=303)


def _utc(moment: datetime | str | None) -> str:
    if moment is None:
        return ""
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    # SQLite gives back naive datetimes; they were stored in UTC.
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _number(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{value:.0%}"


# --- The admin's quality page --------------------------------------------------------


def _statistics(figures: dict[str, Any]) -> list[dict[str, str]]:
    rows = []
    for key, stat in figures["agreement"]["overall"].items():
        name = _STATISTICS.get(key) or (
            f"Krippendorff's alpha, {key.removeprefix('criterion:')} (rubric)"
            if key.startswith("criterion:")
            else key
        )
        interval = (
            f"{stat['ci_low']:.3f} to {stat['ci_high']:.3f}"
            if stat["ci_low"] is not None and stat["ci_high"] is not None
            else "—"
        )
        rows.append(
            {
                "name": name,
                "value": _number(stat["value"], 3) if stat["value"] is not None else "",
                "undefined": stat["note"] if stat["value"] is None else "",
                "interval": interval,
                "units": str(stat["n_units"]),
                "note": stat["note"] if stat["value"] is not None else "",
            }
        )
    return rows


def _experts(figures: dict[str, Any]) -> list[dict[str, Any]]:
    names = figures["names"]
    flags: dict[str, list[str]] = {}
    for flag in figures["flags"]:
        flags.setdefault(flag["worker"], []).append(flag["kind"].replace("_", " "))
    rows = []
    for e in sorted(figures["experts"], key=lambda e: (e["trust"], e["worker"])):
        position = _percent(e["position_a_rate"])
        if e["position_p_value"] is not None:
            position += f" (p = {e['position_p_value']:.2g})"
        speed = "—"
        if e["median_seconds"] is not None:
            speed = f"{e['median_seconds']:.0f} s"
            if e["speed_ratio"] is not None:
                speed += f" ({e['speed_ratio']:.2f}x)"
        rows.append(
            {
                "name": names.get(e["worker"], e["worker"]),
                "imported": e["worker"].startswith("source:"),
                "judgments": e["judgments"],
                "excluded": e["excluded"],
                "gold": _percent(e["gold_accuracy"]),
                "agreement": _percent(e["consensus_agreement"]),
                "speed": speed,
                "position": position,
                "straightlining": _percent(e["straightlining"]),
                "trust": _number(e["trust"]),
                "reasons": e["reasons"],
                "flags": flags.get(e["worker"], []),
            }
        )
    return rows


def _members(session: Session, project_id: int) -> list[str]:
    """Handles of the project's members with no exclusion in force."""
    in_force = (
        select(ExclusionRow.id)
        .where(
            ExclusionRow.project_id == project_id,
            ExclusionRow.user_id == UserRow.id,
            ExclusionRow.lifted_at.is_(None),
        )
        .exists()
    )
    return list(
        session.scalars(
            select(UserRow.handle)
            .join(MembershipRow, MembershipRow.user_id == UserRow.id)
            .where(MembershipRow.project_id == project_id, ~in_force)
            .order_by(UserRow.handle)
        )
    )


def _stored_consensus(session: Session, project_id: int) -> dict[str, Any]:
    """How many consensus labels are stored for the project, and when they were computed."""
    count, newest = session.execute(
        select(func.count(ConsensusLabelRow.id), func.max(ConsensusLabelRow.computed_at)).where(
            ConsensusLabelRow.project_id == project_id,
            ConsensusLabelRow.method != "adjudication",
        )
    ).one()
    return {"labels": int(count or 0), "at": _utc(newest)}


def _quality_page(
    request: Request,
    session: Session,
    actor: Actor,
    project: ProjectRow,
    snapshot: Snapshot | None,
    *,
    error: str = "",
    entered: dict[str, str] | None = None,
    status: int = 200,
) -> HTMLResponse:
    """Render the page from `snapshot` and a few cheap reads of the store."""
    figures = snapshot.figures if snapshot is not None else None
    excluded = excluded_workers(session, project_id=project.id)
    context: dict[str, Any] = {
        "project": project,
        "figures": figures,
        "done": request.query_params.get("done", "")[:_DONE_CHARS],
        "error": error,
        "entered": {"expert": "", "reason": "", **(entered or {})},
        "exclusions": exclusions(session, project_id=project.id),
        "members": _members(session, project.id),
        "stored": _stored_consensus(session, project.id),
        "queue_size": adjudication_queue_size(session, project_id=project.id),
        "utc": _utc,
        "number": _number,
        "percent": _percent,
    }
    if snapshot is not None and figures is not None:
        names = figures["names"]
        context.update(
            computed_at=_utc(snapshot.computed_at),
            changes=changes_since(session, project=project, snapshot=snapshot, excluded=excluded),
            statistics=_statistics(figures),
            experts=_experts(figures),
            flags=[
                {
                    "name": names.get(f["worker"], f["worker"]),
                    "kind": f["kind"].replace("_", " "),
                    "evidence": f["evidence"],
                }
                for f in figures["flags"]
            ],
            pairs=[
                {
                    "a": names.get(p["worker_a"], p["worker_a"]),
                    "b": names.get(p["worker_b"], p["worker_b"]),
                    "shared": p["shared"],
                    "agreement": _percent(p["percent_agreement"]),
                    "kappa": _number(p["cohen_kappa"]),
                }
                for p in figures["agreement"]["pairwise"]
            ],
            charts=figures.get("charts", []),
            version=figures["computed_at"],
        )
    return render(request, "quality_project.html", context, actor=actor, status_code=status)


@router.get("/admin/projects/{project_id}/quality")
def quality_page(project_id: Id, request: Request, actor: LongRunningAdmin) -> HTMLResponse:
    """The project's last computed quality; computed now if it never was (or was lost)."""
    store = get_store(request)
    with store.session() as session:
        visible_project(session, actor=actor, project_id=project_id)
        snapshot = read_snapshot(store, project_id=project_id)
    if snapshot is None:
        _, snapshot = compute_snapshot(store, project_id=project_id, save=False)
    with store.session() as session:
        project = visible_project(session, actor=actor, project_id=project_id)
        return _quality_page(request, session, actor, project, snapshot)


@router.post("/admin/projects/{project_id}/quality/recompute")
def recompute_form(project_id: Id, request: Request, actor: LongRunningAdmin) -> RedirectResponse:
    """Compute the project's quality again and store its consensus labels."""
    store = get_store(request)
    with store.session() as session:
        visible_project(session, actor=actor, project_id=project_id)
    quality, _ = compute_snapshot(store, project_id=project_id, save=True)
    return _done(
        f"/admin/projects/{project_id}/quality",
        f"Recomputed: {quality.stored} consensus labels stored.",
    )


@router.get("/admin/projects/{project_id}/quality/{name}")
def quality_chart(project_id: Id, name: str, request: Request, actor: LongRunningAdmin) -> Response:
    """A chart of the last computation: agreement.png (pairwise heatmap) or trust.png."""
    store = get_store(request)
    with store.session() as session:
        visible_project(session, actor=actor, project_id=project_id)
    png = chart(store, project_id=project_id, name=name) if name in CHARTS else None
    if png is None:
        raise NotFound(f"no chart {name!r} for project {project_id}; recompute its quality")
    return Response(png, media_type="image/png")


def _user(session: Session, handle: str) -> UserRow:
    user = session.scalar(select(UserRow).where(UserRow.handle == handle.strip()))
    if user is None:
        raise NotFound(f"no account with the handle {handle.strip()!r}")
    return user


@router.post("/admin/projects/{project_id}/quality/exclusions", response_model=None)
def exclude_form(
    project_id: Id,
    request: Request,
    session: DbSession,
    actor: AdminActor,
    expert: Text = "",
    reason: LongText = "",
) -> HTMLResponse | RedirectResponse:
    """Leave an expert's judgments out of agreement, consensus and datasets, saying why."""
    project = visible_project(session, actor=actor, project_id=project_id)
    try:
        if not expert.strip():
            raise WorkspaceError("choose the expert whose judgments to exclude")
        user = _user(session, expert)
        with session.begin_nested():
            exclude_expert(
                session, actor=actor, project_id=project_id, user_id=user.id, reason=reason
            )
    except WorkspaceError as exc:
        snapshot = read_snapshot(get_store(request), project_id=project_id)
        return _quality_page(
            request,
            session,
            actor,
            project,
            snapshot,
            error=exc.message,
            entered={"expert": expert, "reason": reason},
            status=exc.status,
        )
    return _done(
        f"/admin/projects/{project_id}/quality",
        f"Excluded {user.handle}'s judgments. The figures and consensus below are stale "
        "until you recompute.",
    )


@router.post("/admin/projects/{project_id}/quality/exclusions/{exclusion_id}/lift")
def lift_form(
    project_id: Id,
    exclusion_id: Id,
    session: DbSession,
    actor: AdminActor,
    reason: LongText = "",
) -> RedirectResponse:
    """Undo an exclusion: the expert's judgments count again."""
    visible_project(session, actor=actor, project_id=project_id)
    row = session.get(ExclusionRow, exclusion_id)
    if row is None or row.project_id != project_id:
        raise NotFound(f"no exclusion {exclusion_id} in this project")
    if row.lifted_at is not None:
        raise Conflict("this exclusion was undone already")
    include_expert(session, actor=actor, project_id=project_id, user_id=row.user_id, reason=reason)
    handle = session.scalar(select(UserRow.handle).where(UserRow.id == row.user_id))
    return _done(
        f"/admin/projects/{project_id}/quality",
        f"{handle}'s judgments count again. The figures and consensus below are stale until "
        "you recompute.",
    )


# --- The reviewers' adjudication queue -------------------------------------------------


@router.get("/review")
def review_index(request: Request, session: DbSession, actor: ReviewerActor) -> HTMLResponse:
    """The projects this reviewer may adjudicate, with how many items wait in each."""
    projects = []
    for project in visible_projects(session, actor=actor):
        projects.append(
            {
                **project,
                "waiting": adjudication_queue_size(session, project_id=project["id"]),
                "nda_needed": not actor.is_admin and not project["nda_accepted"],
            }
        )
    return render(request, "quality_review_index.html", {"projects": projects}, actor=actor)


def _blind_item(item: QueueItem) -> dict[str, Any]:
    """What the page shows of a queued item: model output as sanitised HTML, the rest as
    text for the template to escape."""
    return {
        "id": item.item_id,
        "prompt": [
            {"role": m.get("role", ""), "html": render_markdown(str(m.get("content", "")))}
            for m in item.prompt
        ],
        "answer_a": render_markdown(item.answer_a),
        "answer_b": render_markdown(item.answer_b),
        "label": LABEL_NAMES.get(item.label, item.label),
        "confidence": _percent(item.confidence),
        "method": item.method,
        "judgments": [
            {
                "label": LABEL_NAMES.get(j.label, j.label),
                "strength": j.strength or "",
                "rationale": j.rationale,
                "criteria": sorted(j.criteria.items()),
                "counted": j.counted,
                "imported": j.imported,
            }
            for j in item.judgments
        ],
    }


def _queue_page(
    request: Request,
    session: Session,
    actor: Actor,
    project_id: int,
    *,
    error: str = "",
    status: int = 200,
) -> HTMLResponse:
    project = visible_project(session, actor=actor, project_id=project_id)
    context: dict[str, Any] = {
        "project": project,
        "done": request.query_params.get("done", "")[:_DONE_CHARS],
        "error": error,
        "labels": LABEL_NAMES,
    }
    try:
        reviewable_project(session, actor=actor, project_id=project_id)
    except NeedsNda:
        return render(request, "quality_review_queue.html", {**context, "nda": True}, actor=actor)
    queue = adjudication_queue(session, project_id=project_id, limit=QUEUE_PAGE)
    context.update(
        nda=False,
        items=[_blind_item(item) for item in queue],
        waiting=adjudication_queue_size(session, project_id=project_id),
        computed_at=_utc(queue[0].computed_at) if queue else "",
        threshold=project.adjudication_threshold,
    )
    return render(request, "quality_review_queue.html", context, actor=actor, status_code=status)


@router.get("/review/projects/{project_id}")
def review_queue(
    project_id: Id, request: Request, session: DbSession, actor: ReviewerActor
) -> HTMLResponse:
    """The items whose consensus is least sure, each with its judgments but no names."""
    return _queue_page(request, session, actor, project_id)


@router.post("/review/projects/{project_id}/nda")
def review_nda_form(project_id: Id, session: DbSession, actor: ReviewerActor) -> RedirectResponse:
    """Accept the project's NDA from the queue page, and come back to the queue."""
    accept_nda(session, actor=actor, project_id=project_id)
    return RedirectResponse(f"/review/projects/{project_id}", status_code=303)


@router.post("/review/projects/{project_id}/items/{item_id}", response_model=None)
def adjudicate_form(
    project_id: Id,
    item_id: Id,
    request: Request,
    session: DbSession,
    actor: ReviewerActor,
    label: Text = "",
    note: LongText = "",
) -> HTMLResponse | RedirectResponse:
    """Record the reviewer's final label for an item; a second decision is refused."""
    reviewable_project(session, actor=actor, project_id=project_id)
    try:
        if not label:
            raise WorkspaceError(f"item {item_id}: choose the final label before deciding")
        with session.begin_nested():
            adjudicate(
                session,
                actor=actor,
                project_id=project_id,
                item_id=item_id,
                label=label,
                note=note,
            )
    except WorkspaceError as exc:
        return _queue_page(
            request, session, actor, project_id, error=exc.message, status=exc.status
        )
    return _done(
        f"/review/projects/{project_id}",
        f"Item {item_id}: decided \u201c{LABEL_NAMES[label]}\u201d. The decision is final.",
    )
