"""Dataset pages: the admin's view of a project's dataset versions, one version's manifest,
history and diff against its parent, its data card, and running its checks.

Everything here reads what `tutelage.datasets` wrote; the only change is a check, which
appends an event to the version's history. Reading Parquet files, drawing the card's
plots and checking run outside any request transaction: SQLite has one writer.
"""

from __future__ import annotations

import re
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from tutelage.datasets import DatasetError, DatasetEvent, DatasetVersion, events, list_versions
from tutelage.datasets import open_version as _open_version
from tutelage.store.tables import ProjectRow
from tutelage.web.deps import AdminActor, DbSession, get_store
from tutelage.web.pages import render
from tutelage.web.params import Id
from tutelage.web.routes.admin_api import LongRunningAdmin
from tutelage.workspace.errors import NotFound
from tutelage.workspace.policy import visible_project

__all__ = ["router"]

router = APIRouter(prefix="/admin", include_in_schema=False)

_DONE_CHARS = 300
_DIFF_SHOWN = 50  # record ids listed per kind of difference; the counts are complete
# The card's own style, served as a file: the app's CSP refuses inline <style>.
_CARD_CSS = (
    "body{font-family:system-ui,sans-serif;max-width:52rem;margin:2rem auto;"
    "padding:0 1rem;line-height:1.5}code,pre{background:#f4f4f4}"
    "pre{padding:.5rem;overflow:auto}img{max-width:100%}\n"
)
_INLINE_STYLE = re.compile(r"<style>.*?</style>", re.DOTALL)


def _utc(moment: datetime) -> str:
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _path(version: str) -> str:
    return f"/admin/datasets/{quote(version, safe='')}"


def _open(session: Session, name: str) -> DatasetVersion:
    try:
        return _open_version(session, ref=name)
    except DatasetError as exc:
        raise NotFound(exc.message) from exc


def _latest(history: list[DatasetEvent], kind: str) -> DatasetEvent | None:
    found = [e for e in history if e.kind == kind]
    return found[-1] if found else None


def _check_state(history: list[DatasetEvent]) -> str:
    latest = _latest(history, "check")
    if latest is None:
        return "never"
    return "passed" if latest.passed else "failed"


def _event_row(event: DatasetEvent) -> dict[str, Any]:
    """What the history table shows of one event: its outcome and a one-line summary."""
    details = event.details
    summary: list[str] = []
    if event.kind == "check":
        summary = [str(r) for r in details.get("reasons", [])]
        counts = ", ".join(
            f"{key} {len(details.get(key) or [])}" for key in ("contamination", "leakage", "pii")
        )
        summary.append(counts + f"; {len(details.get('eval_sets') or [])} eval set(s)")
    elif event.kind == "override":
        summary = [f"Reason: {details.get('reason', '')}"]
        if details.get("check_event") is None:
            summary.append("The version had not been checked.")
    elif event.kind == "redaction":
        replaced = details.get("replaced") or {}
        what = ", ".join(f"{kind} {n}" for kind, n in sorted(replaced.items())) or "nothing"
        summary = [
            f"From {details.get('source', '?')}: replaced {what} in "
            f"{details.get('records_changed', 0)} record(s)"
        ]
    else:
        summary = [str(details.get("text") or details)]
    outcome = "" if event.passed is None else ("passed" if event.passed else "failed")
    return {
        "kind": event.kind,
        "at": _utc(event.at),
        "actor": event.actor,
        "outcome": outcome,
        "summary": summary,
    }


@router.get("/projects/{project_id}/datasets")
def datasets_page(
    project_id: Id, request: Request, session: DbSession, actor: AdminActor
) -> HTMLResponse:
    """The project's dataset versions, oldest first, with their latest check."""
    project = visible_project(session, actor=actor, project_id=project_id)
    rows = []
    for version in list_versions(session, project=project.name):
        history = events(session, version=version)
        override = _latest(history, "override")
        rows.append(
            {
                "name": version.name,
                "href": _path(version.name),
                "hash": version.hash[:12],
                "kind": version.kind,
                "records": version.manifest.get("counts", {}).get("records", ""),
                "parent": version.parent or "",
                "created": _utc(version.created_at),
                "check": _check_state(history),
                "override": str(override.details.get("reason", "")) if override else "",
            }
        )
    context = {"project": project, "versions": rows, "done": ""}
    return render(request, "datasets_list.html", context, actor=actor)


@router.get("/datasets/{name}")
def version_page(name: str, request: Request, actor: LongRunningAdmin) -> HTMLResponse:
    """One version: its manifest, history, and what changed since its parent."""
    store = get_store(request)
    with store.session() as session:
        version = _open(session, name)
        history = events(session, version=version)
        parent = _open(session, version.parent) if version.parent else None
        project_id = session.scalar(select(ProjectRow.id).where(ProjectRow.name == version.project))
    diff: dict[str, Any] | None = None
    diff_error = ""
    if parent is not None:
        try:
            from tutelage.datasets.diff import diff_versions  # pandas, only when shown

            found = diff_versions(parent, version).to_json()
            diff = {
                "counts": found["counts"],
                "added": found["added"][:_DIFF_SHOWN],
                "removed": found["removed"][:_DIFF_SHOWN],
                "changed": found["changed"][:_DIFF_SHOWN],
                "shown": _DIFF_SHOWN,
            }
        except DatasetError as exc:
            diff_error = exc.message
    manifest = version.manifest
    context = {
        "version": version,
        "project_id": project_id,
        "href": _path(version.name),
        "parent_href": _path(version.parent) if version.parent else "",
        "created": _utc(version.created_at),
        "counts": manifest.get("counts", {}),
        "filters": manifest.get("filters", {}),
        "consensus": manifest.get("consensus") or {},
        "judges": manifest.get("judges", {}),
        "licence": manifest.get("licence", {}),
        "split": manifest.get("split", {}),
        "redaction": manifest.get("redaction") or {},
        "check": _check_state(history),
        "history": [_event_row(e) for e in reversed(history)],
        "diff": diff,
        "diff_error": diff_error,
        "done": request.query_params.get("done", "")[:_DONE_CHARS],
    }
    return render(request, "datasets_version.html", context, actor=actor)


@router.get("/datasets/{name}/card")
def card_page(name: str, request: Request, actor: LongRunningAdmin) -> HTMLResponse:
    """The version's data card as written by `tutelage card` (plots inlined as data: URIs)."""
    store = get_store(request)
    with store.session() as session:
        version = _open(session, name)
    with tempfile.TemporaryDirectory(prefix="tutelage-card-") as folder:
        from tutelage.datasets.card import write_card

        write_card(store, version=version, out=Path(folder))
        page = (Path(folder) / "card.html").read_text(encoding="utf-8")
    link = '<link rel="stylesheet" href="/admin/dataset-card.css">'
    return HTMLResponse(_INLINE_STYLE.sub(link, page, count=1))


@router.get("/dataset-card.css")
def card_style(actor: AdminActor) -> Response:
    return Response(_CARD_CSS, media_type="text/css")


@router.post("/datasets/{name}/check")
def check_form(name: str, request: Request, actor: LongRunningAdmin) -> RedirectResponse:
    """Run the version's checks with the default settings; the report joins its history."""
    store = get_store(request)
    with store.session() as session:
        version = _open(session, name)
    try:
        from tutelage.datasets.checks import run_checks

        report = run_checks(store, version=version, actor=f"web:{actor.handle}")
        message = (
            "Checked: passed."
            if report.passed
            else ("Checked: failed: " + "; ".join(report.reasons))
        )
    except DatasetError as exc:
        message = f"The check could not run: {exc.message}"
    query = urlencode({"done": message[:_DONE_CHARS]})
    return RedirectResponse(f"{_path(version.name)}?{query}", status_code=303)
