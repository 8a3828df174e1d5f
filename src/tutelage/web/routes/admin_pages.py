"""The admin's pages: projects and their settings, people, imports, progress and cost, audit.

Every form that changes something answers with a 303 redirect carrying a short message
(`?done=...`); a refused form is shown again, with the reason next to it and what was
typed kept. Each change runs in a savepoint, so a refusal leaves nothing half-written.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from datetime import UTC, datetime
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import ValidationError
from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from tutelage.formats import FORMATS, FormatError
from tutelage.interchange import import_file
from tutelage.records import Project, TaskKind
from tutelage.store import StoreError
from tutelage.store.projects import list_projects, project_record
from tutelage.store.tables import ImportRow, ProjectRow, UserRow
from tutelage.store.workspace_tables import AuditRow, MembershipRow, NdaAcceptanceRow
from tutelage.web.admin_forms import ProjectForm, messages, words
from tutelage.web.deps import AdminActor, DbSession, get_store
from tutelage.web.pages import render
from tutelage.web.params import Id
from tutelage.web.routes.admin_api import BuildItems, KnownAnswers, LongRunningAdmin
from tutelage.workspace import audit
from tutelage.workspace.accounts import ROLES, Actor, create_user, invite
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
from tutelage.workspace.policy import nda_hash, visible_project
from tutelage.workspace.stats import project_stats
from tutelage.workspace.throughput import hourly_judgments

__all__ = ["router"]

router = APIRouter(prefix="/admin", include_in_schema=False)

# Empty defaults: a missing field then fails like a wrong one, on the form, not as a 422 page.
Text = Annotated[str, Form(max_length=1024)]
Handle = Annotated[str, Form(max_length=200)]  # the users table's limit
Ticked = Annotated[bool, Form()]
Kinds = Annotated[list[str] | None, Form()]

TASK_KINDS = [kind.value for kind in TaskKind]
AUDIT_PREFIXES = (
    "project.",
    "member.",
    "nda.",
    "judgment.",
    "items.",
    "item.",
    "qualification.",
    "quality.",
    "user.",
    "token.",
    "login.",
)
AUDIT_LIMIT = 500
_DONE_CHARS = 300
_BAR_LEVELS = 20  # bar heights come in steps of 5% (admin.css), as inline styles are refused


def _refusal(exc: Exception) -> tuple[str, int]:
    """Return what to tell the user about a refused change, and the status to answer with."""
    if isinstance(exc, WorkspaceError):
        return exc.message, exc.status
    if isinstance(exc, ValidationError):
        return messages(exc), 400
    return str(exc), 400


def _done(path: str, message: str) -> RedirectResponse:
    return RedirectResponse(f"{path}?{urlencode({'done': message})}", status_code=303)


# --- Read-only queries the pages need and no service offers --------------------------


def _users(session: Session) -> list[UserRow]:
    return list(session.scalars(select(UserRow).order_by(UserRow.handle)))


def _members(session: Session, project: ProjectRow) -> list[dict[str, Any]]:
    """Return the project's members with their qualification and whether they accepted the
    current NDA text."""
    accepted = exists().where(
        NdaAcceptanceRow.project_id == project.id,
        NdaAcceptanceRow.user_id == UserRow.id,
        NdaAcceptanceRow.text_hash == nda_hash(project.nda_text),
    )
    rows = session.execute(
        select(UserRow, MembershipRow, accepted)
        .join(MembershipRow, MembershipRow.user_id == UserRow.id)
        .where(MembershipRow.project_id == project.id)
        .order_by(UserRow.handle)
    )
    return [
        {
            "handle": user.handle,
            "path": quote(user.handle, safe=""),
            "role": user.role,
            "expertise": list(user.expertise),
            "nda": bool(signed) or not project.nda_text,
            "score": member.qualification_score,
            "qualified": member.qualified_at is not None,
        }
        for user, member, signed in rows
    ]


def _imports(session: Session, project_id: int) -> list[ImportRow]:
    return list(
        session.scalars(
            select(ImportRow)
            .where(ImportRow.project_id == project_id)
            .order_by(ImportRow.id.desc())
            .limit(10)
        )
    )


def _audit(
    session: Session, *, project_id: int | None, prefix: str, limit: int
) -> list[tuple[AuditRow, str | None]]:
    """Return audit entries newest first with the actor's handle, for one project or all."""
    query = (
        select(AuditRow, UserRow.handle)
        .outerjoin(UserRow, UserRow.id == AuditRow.actor_id)
        .order_by(AuditRow.id.desc())
        .limit(limit)
    )
    if project_id is not None:
        query = query.where(AuditRow.project_id == project_id)
    if prefix:
        query = query.where(AuditRow.action.startswith(prefix, autoescape=True))
    return [(entry, handle) for entry, handle in session.execute(query)]


# --- Rendering --------------------------------------------------------------------------


def _page(
    request: Request,
    name: str,
    context: dict[str, Any],
    *,
    actor: Actor,
    status: int = 200,
) -> HTMLResponse:
    done = request.query_params.get("done", "")[:_DONE_CHARS]
    return render(request, name, {"done": done, **context}, actor=actor, status_code=status)


def _utc(moment: datetime | None) -> str:
    if moment is None:
        return ""
    # SQLite gives back naive datetimes; they were stored in UTC.
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _money(amount: Decimal | None, currency: str) -> str:
    return "—" if amount is None else f"{amount:,.2f} {currency}"


def _index_page(
    request: Request,
    session: Session,
    actor: Actor,
    *,
    form: str = "",
    refused: Exception | None = None,
    entered: dict[str, Any] | None = None,
    invitation_url: str = "",
) -> HTMLResponse:
    """Render the overview; `refused`, if given, is shown next to the form named `form`."""
    projects = []
    for row in list_projects(session):
        stats = project_stats(session, project_id=row.id)
        projects.append(
            {
                "id": row.id,
                "name": row.name,
                "domain": row.domain,
                "done": stats.progress["done"],
                "total": stats.progress["items"],
                "last_hour": stats.judgments_last_hour,
                "cost": _money(stats.cost_so_far, stats.currency),
            }
        )
    forms: dict[str, dict[str, Any]] = {
        "create_user": {
            "email": "",
            "handle": "",
            "display_name": "",
            "role": "expert",
            "expertise": "",
        },
        "invite": {"email": "", "role": "expert", "project_id": "", "expertise": ""},
    }
    if form:
        forms[form].update(entered or {})
    error, status = _refusal(refused) if refused is not None else ("", 200)
    context = {
        "projects": projects,
        "users": _users(session),
        "roles": ROLES,
        "forms": forms,
        "errors": {form: error} if error else {},
        "invitation_url": invitation_url,
    }
    return _page(request, "admin_index.html", context, actor=actor, status=status)


def _project_form_page(
    request: Request,
    actor: Actor,
    *,
    values: ProjectForm,
    project_id: int | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> HTMLResponse:
    context = {
        "project_id": project_id,
        "values": values,
        "errors": errors or {},
        "task_kinds": TASK_KINDS,
    }
    return _page(request, "admin_project_form.html", context, actor=actor, status=status)


def _project_page(
    request: Request,
    session: Session,
    actor: Actor,
    project_id: int,
    *,
    form: str = "",
    refused: Exception | None = None,
    entered: dict[str, Any] | None = None,
    imported: int | None = None,
    examples: list[str] | None = None,
) -> HTMLResponse:
    """Render a project's page; `refused`, if given, is shown next to the form named `form`."""
    project = visible_project(session, actor=actor, project_id=project_id)
    stats = project_stats(session, project_id=project_id)
    hours = hourly_judgments(session, project_id=project_id)
    peak = max((hour.judgments for hour in hours), default=0)
    forms: dict[str, dict[str, Any]] = {
        "build": {"kinds": list(project.task_kinds), "max_answers": "4", "redteam_slots": "0"},
        "known": {"purpose": "gold", "count": "20", "source": ""},
        "member": {"handle": ""},
        "expertise": {"handle": "", "expertise": ""},
        "import": {"format": "auto", "source": "", "skip_invalid": False, "only_new": False},
        "members": {},
    }
    if form:
        forms[form].update(entered or {})
    report = None
    if imported is not None:
        row = session.get(ImportRow, imported)
        if row is not None and row.project_id == project_id:
            report = {"row": row, "examples": examples or []}
    error, status = _refusal(refused) if refused is not None else ("", 200)
    context = {
        "project": project,
        "stats": stats,
        "money": _money,
        "cost_so_far": _money(stats.cost_so_far, stats.currency),
        "cost_per_judgment": _money(stats.cost_per_judgment, stats.currency),
        "projected": _money(stats.projected_cost_to_finish, stats.currency),
        "hours": [
            {
                "label": hour.start.strftime("%H:00"),
                "when": _utc(hour.start),
                "judgments": hour.judgments,
                # A single judgment still shows as a sliver, not as nothing.
                "level": max(1, round(_BAR_LEVELS * hour.judgments / peak))
                if hour.judgments
                else 0,
            }
            for hour in hours
        ],
        "judgments_24h": sum(hour.judgments for hour in hours),
        "members": _members(session, project),
        "handles": [user.handle for user in _users(session)],
        "imports": _imports(session, project_id),
        "report": report,
        "utc": _utc,
        "forms": forms,
        "errors": {form: error} if error else {},
        "task_kinds": TASK_KINDS,
        "formats": FORMATS,
    }
    return _page(request, "admin_project.html", context, actor=actor, status=status)


# --- Overview, people -------------------------------------------------------------------


@router.get("")
def admin_index(request: Request, session: DbSession, actor: AdminActor) -> HTMLResponse:
    return _index_page(request, session, actor)


@router.post("/users", response_model=None)
def create_user_form(
    request: Request,
    session: DbSession,
    actor: AdminActor,
    email: Text = "",
    handle: Handle = "",
    display_name: Text = "",
    role: Text = "expert",
    expertise: Text = "",
    password: Text = "",
) -> HTMLResponse | RedirectResponse:
    try:
        with session.begin_nested():
            user = create_user(
                session,
                email=email,
                password=password,
                handle=handle,
                role=role,
                display_name=display_name.strip(),
                expertise=words(expertise),
                actor_id=actor.user_id,
            )
    except (WorkspaceError, StoreError) as exc:
        entered = {
            "email": email,
            "handle": handle,
            "display_name": display_name,
            "role": role,
            "expertise": expertise,
        }
        return _index_page(
            request, session, actor, form="create_user", refused=exc, entered=entered
        )
    return _done("/admin", f"Created the account {user.handle} ({user.role}).")


@router.post("/invitations")
def invite_form(
    request: Request,
    session: DbSession,
    actor: AdminActor,
    email: Text = "",
    role: Text = "expert",
    project_id: Text = "",
    expertise: Text = "",
) -> HTMLResponse:
    """Show the new invitation link once, on the page itself: a link in a redirect's URL
    would land in the browser's history and the server's access log."""
    entered = {"email": email, "role": role, "project_id": project_id, "expertise": expertise}
    try:
        if "@" not in email:
            raise WorkspaceError(f"not an e-mail address: {email!r}")
        with session.begin_nested():
            token = invite(
                session,
                actor_id=actor.user_id,
                email=email,
                role=role,
                project_id=int(project_id) if project_id.isdigit() else None,
                expertise=words(expertise),
            )
    except WorkspaceError as exc:
        return _index_page(request, session, actor, form="invite", refused=exc, entered=entered)
    url = str(request.url_for("invitation_form", token=token))
    return _index_page(request, session, actor, invitation_url=url)


# --- Project settings -------------------------------------------------------------------


@router.get("/projects/new")
def new_project_form(request: Request, actor: AdminActor) -> HTMLResponse:
    values = ProjectForm.of(Project(name="new")).model_copy(update={"name": ""})
    return _project_form_page(request, actor, values=values)


@router.post("/projects/new", response_model=None)
def new_project_submit(
    request: Request,
    session: DbSession,
    actor: AdminActor,
    values: Annotated[ProjectForm, Form()],
) -> HTMLResponse | RedirectResponse:
    project, errors = values.project()
    if project is not None:
        try:
            with session.begin_nested():
                row = new_project(session, actor=actor, project=project)
        except (WorkspaceError, StoreError) as exc:
            errors = {"": _refusal(exc)[0]}
        else:
            return _done(f"/admin/projects/{row.id}", f"Created the project {row.name}.")
    return _project_form_page(request, actor, values=values, errors=errors, status=400)


@router.get("/projects/{project_id}/edit")
def edit_project_form(
    project_id: Id, request: Request, session: DbSession, actor: AdminActor
) -> HTMLResponse:
    row = visible_project(session, actor=actor, project_id=project_id)
    values = ProjectForm.of(project_record(row))
    return _project_form_page(request, actor, values=values, project_id=project_id)


@router.post("/projects/{project_id}/edit", response_model=None)
def edit_project_submit(
    project_id: Id,
    request: Request,
    session: DbSession,
    actor: AdminActor,
    values: Annotated[ProjectForm, Form()],
) -> HTMLResponse | RedirectResponse:
    nda_before = visible_project(session, actor=actor, project_id=project_id).nda_text
    project, errors = values.project()
    if project is not None:
        try:
            with session.begin_nested():
                update_project(session, actor=actor, project_id=project_id, project=project)
        except (WorkspaceError, StoreError) as exc:
            errors = {"": _refusal(exc)[0]}
        else:
            message = "Saved the settings."
            if project.nda_text != nda_before:
                message += " The NDA changed: every member must accept it again."
            return _done(f"/admin/projects/{project_id}", message)
    return _project_form_page(
        request, actor, values=values, project_id=project_id, errors=errors, status=400
    )


# --- A project's progress, items, members and imports ----------------------------------


@router.get("/projects/{project_id}")
def project_page(
    project_id: Id,
    request: Request,
    session: DbSession,
    actor: AdminActor,
    imported: int | None = None,
    example: Annotated[list[str] | None, Query()] = None,
) -> HTMLResponse:
    """Progress, throughput, cost and experts; forms for items, members and imports."""
    return _project_page(request, session, actor, project_id, imported=imported, examples=example)


@router.post("/projects/{project_id}/items", response_model=None)
def build_items_form(
    project_id: Id,
    request: Request,
    session: DbSession,
    actor: AdminActor,
    kinds: Kinds = None,
    max_answers: Text = "4",
    redteam_slots: Text = "0",
) -> HTMLResponse | RedirectResponse:
    visible_project(session, actor=actor, project_id=project_id)
    entered = {"kinds": kinds or [], "max_answers": max_answers, "redteam_slots": redteam_slots}
    try:
        if not kinds:
            raise WorkspaceError("tick at least one kind of item to build")
        body = BuildItems.model_validate(entered)
        with session.begin_nested():
            built = build_items(
                session,
                project_id=project_id,
                kinds=tuple(body.kinds or ()),
                actor_id=actor.user_id,
                max_answers=body.max_answers,
                redteam_slots=body.redteam_slots,
            )
    except (WorkspaceError, ValidationError) as exc:
        return _project_page(
            request, session, actor, project_id, form="build", refused=exc, entered=entered
        )
    made = ", ".join(f"{count} {kind}" for kind, count in sorted(built.created.items()))
    return _done(f"/admin/projects/{project_id}", f"Built items: {made or 'none new'}.")


@router.post("/projects/{project_id}/known-answers", response_model=None)
def known_answers_form(
    project_id: Id,
    request: Request,
    session: DbSession,
    actor: AdminActor,
    purpose: Text = "gold",
    count: Text = "",
    source: Text = "",
) -> HTMLResponse | RedirectResponse:
    visible_project(session, actor=actor, project_id=project_id)
    entered = {"purpose": purpose, "count": count, "source": source}
    try:
        body = KnownAnswers.model_validate({**entered, "source": source.strip() or None})
        with session.begin_nested():
            made = mark_known_answers(
                session,
                project_id=project_id,
                purpose=body.purpose,
                count=body.count,
                source=body.source,
                actor_id=actor.user_id,
            )
    except (WorkspaceError, ValidationError) as exc:
        return _project_page(
            request, session, actor, project_id, form="known", refused=exc, entered=entered
        )
    return _done(f"/admin/projects/{project_id}", f"Made {made} {purpose} items.")


@router.post("/projects/{project_id}/members", response_model=None)
def add_member_form(
    project_id: Id,
    request: Request,
    session: DbSession,
    actor: AdminActor,
    handle: Handle = "",
) -> HTMLResponse | RedirectResponse:
    visible_project(session, actor=actor, project_id=project_id)
    try:
        with session.begin_nested():
            add_member(session, actor=actor, project_id=project_id, handle=handle.strip())
    except WorkspaceError as exc:
        return _project_page(
            request,
            session,
            actor,
            project_id,
            form="member",
            refused=exc,
            entered={"handle": handle},
        )
    return _done(f"/admin/projects/{project_id}", f"{handle.strip()} is a member now.")


@router.post("/projects/{project_id}/members/{handle}/remove", response_model=None)
def remove_member_form(
    project_id: Id, handle: str, request: Request, session: DbSession, actor: AdminActor
) -> HTMLResponse | RedirectResponse:
    visible_project(session, actor=actor, project_id=project_id)
    try:
        with session.begin_nested():
            remove_member(session, actor=actor, project_id=project_id, handle=handle)
    except WorkspaceError as exc:
        return _project_page(request, session, actor, project_id, form="members", refused=exc)
    return _done(f"/admin/projects/{project_id}", f"Removed {handle} from the project.")


@router.post("/projects/{project_id}/members/{handle}/reset-qualification", response_model=None)
def reset_qualification_form(
    project_id: Id, handle: str, request: Request, session: DbSession, actor: AdminActor
) -> HTMLResponse | RedirectResponse:
    visible_project(session, actor=actor, project_id=project_id)
    try:
        with session.begin_nested():
            reset_qualification(session, actor=actor, project_id=project_id, handle=handle)
    except WorkspaceError as exc:
        return _project_page(request, session, actor, project_id, form="members", refused=exc)
    return _done(f"/admin/projects/{project_id}", f"{handle} may take the qualification again.")


@router.post("/projects/{project_id}/expertise", response_model=None)
def expertise_form(
    project_id: Id,
    request: Request,
    session: DbSession,
    actor: AdminActor,
    handle: Handle = "",
    expertise: Text = "",
) -> HTMLResponse | RedirectResponse:
    visible_project(session, actor=actor, project_id=project_id)
    tags = words(expertise)
    try:
        with session.begin_nested():
            set_expertise(session, actor=actor, handle=handle.strip(), expertise=tags)
    except WorkspaceError as exc:
        return _project_page(
            request,
            session,
            actor,
            project_id,
            form="expertise",
            refused=exc,
            entered={"handle": handle, "expertise": expertise},
        )
    shown = ", ".join(sorted(tags)) or "none"
    return _done(f"/admin/projects/{project_id}", f"{handle.strip()}'s expertise: {shown}.")


def _import_failure(exc: Exception, folder: str, name: str) -> str:
    """Say why an upload was refused, naming the file as uploaded, not its temporary copy."""
    if isinstance(exc, FormatError) and exc.line is not None:
        reason = str(exc).removeprefix(f"{exc.path}:{exc.line}: ")
        return f"Nothing was imported: line {exc.line} of {name}: {reason}"
    text = _refusal(exc)[0].replace(str(Path(folder) / name), name).replace(folder, "")
    return f"Nothing was imported: {text}"


@router.post("/projects/{project_id}/import", response_model=None)
def import_form(
    project_id: Id,
    request: Request,
    actor: LongRunningAdmin,
    file: Annotated[UploadFile | None, File()] = None,
    format: Text = "auto",
    source: Text = "",
    skip_invalid: Ticked = False,
    only_new: Ticked = False,
) -> HTMLResponse | RedirectResponse:
    """Import an uploaded file with the foundation's importers, all or nothing, and show
    its report. A second upload of the same file is refused, so a repeated POST is safe."""
    store = get_store(request)
    # The import is its own transaction; this request holds no other (SQLite has one writer).
    with store.session() as session:
        project_name = visible_project(session, actor=actor, project_id=project_id).name
    entered = {
        "format": format,
        "source": source,
        "skip_invalid": skip_invalid,
        "only_new": only_new,
    }
    name = Path(file.filename).name if file is not None and file.filename else ""
    with tempfile.TemporaryDirectory() as folder:
        try:
            if file is None or not name:
                raise WorkspaceError("choose a file to import")
            if format != "auto" and format not in FORMATS:
                raise WorkspaceError(f"unknown format {format!r}; known: {', '.join(FORMATS)}")
            path = Path(folder) / name
            with path.open("wb") as handle:
                shutil.copyfileobj(file.file, handle)
            report = import_file(
                store,
                path=path,
                project=project_name,
                fmt=None if format == "auto" else format,
                source=source.strip() or None,
                skip_invalid=skip_invalid,
                only_new=only_new,
                before_commit=partial(
                    audit.record_import,
                    actor_id=actor.user_id,
                    project_id=project_id,
                    filename=name,
                ),
            )
        except (FormatError, StoreError, WorkspaceError, ValidationError) as exc:
            refused = WorkspaceError(_import_failure(exc, folder, name))
            with store.session() as session:
                return _project_page(
                    request, session, actor, project_id, form="import", refused=refused,
                    entered=entered,
                )  # fmt: skip
        examples = [example.replace(str(path), name) for example in report.skipped_examples]
    query = urlencode({"imported": report.import_id, "example": examples}, doseq=True)
    return RedirectResponse(f"/admin/projects/{project_id}?{query}#import", status_code=303)


# --- Audit log ---------------------------------------------------------------------------


def _audit_page(
    request: Request,
    session: Session,
    actor: Actor,
    *,
    project: ProjectRow | None,
    action: str,
) -> HTMLResponse:
    prefix = action.strip()
    entries = [
        {
            "at": _utc(entry.at),
            "who": handle or ("—" if entry.actor_id is None else f"user {entry.actor_id}"),
            "action": entry.action,
            "target": entry.target,
            "details": json.dumps(entry.details, indent=2, sort_keys=True, ensure_ascii=False)
            if entry.details
            else "",
        }
        for entry, handle in _audit(
            session,
            project_id=None if project is None else project.id,
            prefix=prefix,
            limit=AUDIT_LIMIT,
        )
    ]
    context = {
        "project": project,
        "here": "/admin/audit" if project is None else f"/admin/projects/{project.id}/audit",
        "entries": entries,
        "action": prefix,
        "prefixes": AUDIT_PREFIXES,
        "limit": AUDIT_LIMIT,
    }
    return _page(request, "admin_audit.html", context, actor=actor)


@router.get("/audit")
def audit_page(
    request: Request,
    session: DbSession,
    actor: AdminActor,
    action: Annotated[str, Query(max_length=100)] = "",
) -> HTMLResponse:
    """Every audit entry, accounts and expertise included (they belong to no project)."""
    return _audit_page(request, session, actor, project=None, action=action)


@router.get("/projects/{project_id}/audit")
def project_audit_page(
    project_id: Id,
    request: Request,
    session: DbSession,
    actor: AdminActor,
    action: Annotated[str, Query(max_length=100)] = "",
) -> HTMLResponse:
    project = visible_project(session, actor=actor, project_id=project_id)
    return _audit_page(request, session, actor, project=project, action=action)
