"""The last computed quality of each project, kept as small files so that the admin's
quality page and its charts read it instead of recomputing.

Computing takes seconds to a minute on a large project. The page shows the last
computation, says when it was made and what changed since (judgments, exclusions,
adjudications, settings), and its Recompute button makes a new one. What is kept is
derived and can always be made again, so it is not in the store: the figures the page
shows (not the per-item labels, which the store holds) and the two PNG charts, under
``$TUTELAGE_HOME/quality/<store>/<project id>/``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tutelage.files import write_bytes_whole
from tutelage.quality.persist import ProjectQuality, analyse_project
from tutelage.quality.report import heatmap_png, report_json, trust_png
from tutelage.settings import tutelage_home
from tutelage.store import Store
from tutelage.store.quality_tables import AdjudicationRow
from tutelage.store.tables import ComparisonRow, ProjectRow

__all__ = ["CHARTS", "Snapshot", "changes_since", "chart", "compute_snapshot", "read_snapshot"]

CHARTS = ("agreement.png", "trust.png")
SUMMARY = "summary.json"
PAIRS_KEPT = 100
_PER_ITEM = ("consensus", "majority", "dawid_skene", "bradley_terry")
_locks: dict[Path, threading.Lock] = {}
_locks_lock = threading.Lock()
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Snapshot:
    """The figures of one computation (`report_json` without its per-item lists and
    matrix; the pairs of experts sharing the most items), as JSON-ready data."""

    figures: dict[str, Any]

    @property
    def computed_at(self) -> str:
        return str(self.figures["computed_at"])

    @property
    def inputs(self) -> dict[str, Any]:
        """What the figures were computed from, to tell later whether they are stale."""
        inputs: dict[str, Any] = self.figures["inputs"]
        return inputs


def _folder(store: Store, project_id: int) -> Path:
    key = hashlib.sha256(store.url.encode("utf-8")).hexdigest()[:16]
    return tutelage_home() / "quality" / key / str(project_id)


def _lock(folder: Path) -> threading.Lock:
    with _locks_lock:
        return _locks.setdefault(folder, threading.Lock())


def _inputs(session: Session, project: ProjectRow) -> dict[str, Any]:
    """The newest comparison, adjudication count and settings, read before computing."""
    newest = session.scalar(
        select(func.max(ComparisonRow.id)).where(ComparisonRow.project_id == project.id)
    )
    adjudicated = session.scalar(
        select(func.count(AdjudicationRow.id)).where(AdjudicationRow.project_id == project.id)
    )
    return {
        "last_comparison_id": int(newest or 0),
        "adjudications": int(adjudicated or 0),
        "method": project.consensus_method,
        "threshold": float(project.adjudication_threshold),
    }


def compute_snapshot(
    store: Store, *, project_id: int, save: bool, bootstrap: int = 1000
) -> tuple[ProjectQuality, Snapshot]:
    """Analyse the project (storing its consensus labels when `save`) and keep the figures
    and charts for the pages. Runs no transaction of its own while analysing, and none
    may be open in the caller (SQLite has one writer)."""
    folder = _folder(store, project_id)
    with _lock(folder):
        with store.session() as session:
            project = session.get(ProjectRow, project_id)
            if project is None:
                raise LookupError(f"no project {project_id}")
            name = project.name
            inputs = _inputs(session, project)
        quality = analyse_project(store, project=name, bootstrap=bootstrap, save=save)
        figures = report_json(quality)
        for key in _PER_ITEM:
            figures.pop(key, None)
        agreement = figures["agreement"]
        agreement.pop("matrix", None)
        agreement["pairs"] = len(agreement["pairwise"])
        agreement["pairwise"] = sorted(agreement["pairwise"], key=lambda p: -p["shared"])[
            :PAIRS_KEPT
        ]
        figures["project_id"] = project_id
        figures["inputs"] = {**inputs, "excluded": figures["judgments"]["excluded"]}
        figures["consensus_stored"] = save
        charts = {
            "agreement.png": heatmap_png(
                quality.analysis.agreement.matrix, quality.judgments.names
            ),
            "trust.png": trust_png(quality),
        }
        figures["charts"] = [name for name, png in charts.items() if png is not None]
        try:
            _write(folder, figures, charts)
        except OSError as exc:  # the page still shows this computation; the next recomputes
            log.warning("could not keep the quality figures in %s: %s", folder, exc)
    return quality, Snapshot(figures)


def _write(folder: Path, figures: dict[str, Any], charts: dict[str, bytes | None]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, png in charts.items():
        if png is None:
            (folder / name).unlink(missing_ok=True)  # a stale chart would mislead
        else:
            write_bytes_whole(folder / name, png)
    # The figures last: a reader that finds them finds their charts too.
    write_bytes_whole(folder / SUMMARY, json.dumps(figures, allow_nan=False).encode("utf-8"))


def read_snapshot(store: Store, *, project_id: int) -> Snapshot | None:
    """The project's last computation, or None if there is none (or it is unreadable)."""
    path = _folder(store, project_id) / SUMMARY
    try:
        figures = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(figures, dict) or figures.get("project_id") != project_id:
        return None
    return Snapshot(figures)


def chart(store: Store, *, project_id: int, name: str) -> bytes | None:
    """One of CHARTS of the project's last computation, or None."""
    if name not in CHARTS:
        return None
    try:
        return (_folder(store, project_id) / name).read_bytes()
    except OSError:
        return None


def changes_since(
    session: Session, *, project: ProjectRow, snapshot: Snapshot, excluded: frozenset[str]
) -> list[str]:
    """What changed in the store since the snapshot was computed, in words (empty: nothing).

    `excluded` is the workers whose exclusion is in force now.
    """
    inputs = snapshot.inputs
    now = _inputs(session, project)
    changes = []
    new = session.scalar(
        select(func.count(ComparisonRow.id)).where(
            ComparisonRow.project_id == project.id,
            ComparisonRow.id > inputs["last_comparison_id"],
        )
    )
    if new:
        changes.append(f"{new} new comparison{'s' if new != 1 else ''}")
    names = snapshot.figures.get("names", {})
    then = frozenset(inputs["excluded"])
    for worker in sorted(excluded - then):
        changes.append(f"{names.get(worker, 'an expert')} excluded")
    for worker in sorted(then - excluded):
        changes.append(f"{names.get(worker, 'an expert')} included again")
    decided = now["adjudications"] - inputs["adjudications"]
    if decided:
        changes.append(f"{decided} item{'s' if decided != 1 else ''} adjudicated")
    if now["method"] != inputs["method"]:
        changes.append(f"the consensus method is now {now['method']}")
    if now["threshold"] != inputs["threshold"]:
        changes.append(f"the adjudication threshold is now {now['threshold']:.2f}")
    return changes
