"""A project's quality computed from the store, its consensus labels stored, and the
reviewers' adjudication queue read back from them.

The analysis of a large project takes seconds to a minute, so it runs between two
short transactions (read, then write) rather than inside one: on SQLite a transaction
holds the only write lock, and experts' submits would wait for the statistics.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from tutelage.quality.bias import ExpertDrift, GroupBias, expert_drift, group_bias
from tutelage.quality.decisions import item_judgment_ids
from tutelage.quality.load import (
    ProjectJudgments,
    excluded_workers,
    expert_worker,
    load_judgments,
)
from tutelage.store import Store
from tutelage.store.projects import get_project
from tutelage.store.quality_tables import AdjudicationRow, ConsensusLabelRow
from tutelage.store.tables import ComparisonRow, CompletionRow, ProjectRow, PromptRow
from tutelage.store.workspace_tables import ItemRow
from tutelage.workspace.errors import NotFound

if TYPE_CHECKING:  # the statistics stack loads only when a project is analysed
    from tutelage.quality.analysis import QualityAnalysis
    from tutelage.quality.consensus import ConsensusLabel

__all__ = [
    "BlindJudgment",
    "ProjectQuality",
    "QueueItem",
    "adjudication_queue",
    "adjudication_queue_size",
    "analyse_project",
    "save_consensus",
]

_FLIP = {"a": "b", "b": "a"}


@dataclass(frozen=True)
class ProjectQuality:
    """A project's judgments as loaded, their analysis, and how long each step took (s)."""

    judgments: ProjectJudgments
    analysis: QualityAnalysis
    computed_at: datetime
    seconds: dict[str, float]
    stored: int
    bias: tuple[GroupBias, ...] = ()
    drift: tuple[ExpertDrift, ...] = ()


def _bias_inputs(
    session: Session, project_id: int, judgments: ProjectJudgments
) -> tuple[dict[int, str], dict[int, str], dict[str, list[str]]]:
    """Return (completion texts, completion model ids, worker -> expertise tags); the
    texts only when some expert has a tag (without one there is no group to compare)."""
    from tutelage.store.tables import UserRow

    workers = {str(w) for w in judgments.comparisons["worker"].unique()}
    ids = sorted(int(w.split(":", 1)[1]) for w in workers if w.startswith("expert:"))
    groups: dict[str, list[str]] = {}
    for start in range(0, len(ids), 5_000):
        for user_id, tags in session.execute(
            select(UserRow.id, UserRow.expertise).where(UserRow.id.in_(ids[start : start + 5_000]))
        ):
            if tags:
                groups[expert_worker(int(user_id))] = [str(t) for t in tags]
    if not groups:
        return {}, {}, {}
    texts: dict[int, str] = {}
    models: dict[int, str] = {}
    for completion_id, text, model_id in session.execute(
        select(CompletionRow.id, CompletionRow.text, CompletionRow.model_id)
        .join(PromptRow, PromptRow.id == CompletionRow.prompt_id)
        .where(PromptRow.project_id == project_id)
    ):
        texts[int(completion_id)] = str(text)
        models[int(completion_id)] = str(model_id)
    return texts, models, groups


def analyse_project(
    store: Store,
    *,
    project: str,
    bootstrap: int = 1000,
    seed: int = 0,
    save: bool = True,
    progress: Callable[[str], None] | None = None,
) -> ProjectQuality:
    """Load the project's judgments, analyse them with its consensus method, and (when
    `save`) store the consensus labels."""
    from tutelage.quality.analysis import analyse

    say = progress or (lambda _message: None)
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    with store.session() as session:
        project_id = get_project(session, name=project).id
        judgments = load_judgments(session, project_id=project_id, progress=say)
    seconds["load"] = time.perf_counter() - started
    started = time.perf_counter()
    analysis = analyse(
        judgments.comparisons,
        scores=judgments.scores if not judgments.scores.empty else None,
        criteria_levels=judgments.criteria_levels,
        rankings=judgments.rankings if not judgments.rankings.empty else None,
        gold=judgments.gold,
        adjudications=judgments.adjudications,
        excluded=judgments.excluded,
        method=judgments.method,
        bootstrap=bootstrap,
        seed=seed,
        progress=say,
    )
    seconds["analyse"] = time.perf_counter() - started
    started = time.perf_counter()
    say("bias by expert group, drift")
    with store.read_session() as session:
        texts, models, groups = _bias_inputs(session, project_id, judgments)
    # experts only: an imported source is no group of experts, and does not drift
    kept = judgments.comparisons[~judgments.comparisons["worker"].isin(judgments.excluded)]
    experts = kept[kept["worker"].astype(str).str.startswith("expert:")]
    bias = tuple(group_bias(experts, texts=texts, models=models, groups=groups)) if groups else ()
    consensus = {c.item: c.label for c in analysis.consensus}
    drift = tuple(expert_drift(experts, consensus))
    seconds["bias"] = time.perf_counter() - started
    computed_at = datetime.now(UTC)
    stored = 0
    if save:
        started = time.perf_counter()
        say("storing consensus labels")
        with store.session() as session:
            stored = save_consensus(
                session,
                project_id=project_id,
                consensus=analysis.consensus,
                pairs=judgments.pairs,
                at=computed_at,
            )
        seconds["store"] = time.perf_counter() - started
    return ProjectQuality(judgments, analysis, computed_at, seconds, stored, bias, drift)


def save_consensus(
    session: Session,
    *,
    project_id: int,
    consensus: list[ConsensusLabel],
    pairs: dict[int, tuple[int, int]] | None = None,
    at: datetime | None = None,
) -> int:
    """Replace the project's stored consensus labels; returns how many were stored.

    A negative unit is a pair no item shows (`pairs` maps it to its two completions, as
    `ProjectJudgments.pairs` does); it is stored by its completions. Adjudications made
    since the judgments were read still win: they are read again here.
    """
    pairs = pairs or {}
    at = at or datetime.now(UTC)
    adjudicated = dict(
        session.execute(
            select(AdjudicationRow.item_id, AdjudicationRow.label).where(
                AdjudicationRow.project_id == project_id
            )
        ).all()
    )
    rows: dict[int, dict[str, Any]] = {
        label.item: {
            "project_id": project_id,
            "item_id": label.item if label.item >= 0 else None,
            "completion_a_id": pairs[label.item][0] if label.item < 0 else None,
            "completion_b_id": pairs[label.item][1] if label.item < 0 else None,
            "label": label.label,
            "confidence": float(label.confidence),
            "method": label.method,
            "judgment_ids": [int(i) for i in label.judgment_ids],
            "computed_at": at,
        }
        for label in consensus
    }
    for item_id, label in adjudicated.items():
        row = rows.setdefault(
            item_id,
            {
                "project_id": project_id,
                "item_id": item_id,
                "completion_a_id": None,
                "completion_b_id": None,
                "judgment_ids": [],
                "computed_at": at,
            },
        )
        row.update(label=label, confidence=1.0, method="adjudication")
    session.execute(delete(ConsensusLabelRow).where(ConsensusLabelRow.project_id == project_id))
    values = list(rows.values())
    for start in range(0, len(values), 10_000):
        session.execute(insert(ConsensusLabelRow), values[start : start + 10_000])
    return len(values)


@dataclass(frozen=True)
class BlindJudgment:
    """One judgment as a reviewer sees it: what was decided and why, never by whom.

    `label` is in the item's canonical order; `counted` is False for the judgments of
    an excluded expert; `imported` for a judgment that came with an imported data set.
    """

    label: str
    strength: str | None
    rationale: str
    criteria: dict[str, int]
    counted: bool
    imported: bool


@dataclass(frozen=True)
class QueueItem:
    """An item whose consensus is not sure enough, with all that a reviewer needs."""

    item_id: int
    prompt: list[dict[str, str]]
    answer_a: str
    answer_b: str
    label: str
    confidence: float
    method: str
    computed_at: datetime
    judgments: list[BlindJudgment]


def _blind(rows: list[Any], first: int, excluded: frozenset[str]) -> list[BlindJudgment]:
    judgments = []
    for row in rows:
        label = row.outcome if row.completion_a_id == first else _FLIP.get(row.outcome, row.outcome)
        counted = row.expert_id is None or expert_worker(row.expert_id) not in excluded
        judgments.append(
            BlindJudgment(
                label=label,
                strength=row.strength,
                rationale=row.rationale,
                criteria=dict(row.criteria),
                counted=counted,
                imported=row.source is not None,
            )
        )
    # The order of storage would say who judged first; sort by content instead.
    return sorted(judgments, key=lambda j: (j.label, j.strength or "", j.rationale))


def _queued(project: ProjectRow) -> list[Any]:
    """Where-clauses of the stored labels that make the project's adjudication queue."""
    # Only items are adjudicated: a pair no item shows has no reviewer's page.
    return [
        ConsensusLabelRow.project_id == project.id,
        ConsensusLabelRow.item_id.is_not(None),
        ConsensusLabelRow.method != "adjudication",
        ConsensusLabelRow.confidence < project.adjudication_threshold,
        ~select(AdjudicationRow.id)
        .where(AdjudicationRow.item_id == ConsensusLabelRow.item_id)
        .exists(),
    ]


def _project_row(session: Session, project_id: int) -> ProjectRow:
    project = session.get(ProjectRow, project_id)
    if project is None:
        raise NotFound(f"no project {project_id}")
    return project


def adjudication_queue_size(session: Session, *, project_id: int) -> int:
    """How many items wait in the project's adjudication queue (see `adjudication_queue`)."""
    project = _project_row(session, project_id)
    count = session.scalar(select(func.count(ConsensusLabelRow.id)).where(*_queued(project)))
    return int(count or 0)


def adjudication_queue(session: Session, *, project_id: int, limit: int = 50) -> list[QueueItem]:
    """The items whose stored consensus confidence is below the project's threshold and
    that no one adjudicated, least sure first, with their judgments (no identities).

    The queue is as of the last computation (`tutelage quality report` or
    `analyse_project`); `computed_at` says when that was.
    """
    project = _project_row(session, project_id)
    labels = session.scalars(
        select(ConsensusLabelRow)
        .where(*_queued(project))
        .order_by(ConsensusLabelRow.confidence, ConsensusLabelRow.item_id)
        .limit(limit)
    ).all()
    excluded = excluded_workers(session, project_id=project_id)
    queue = []
    for label in labels:
        item = session.get(ItemRow, label.item_id)
        assert item is not None
        first, second = item.completion_ids[:2]
        texts = dict(
            session.execute(
                select(CompletionRow.id, CompletionRow.text).where(
                    CompletionRow.id.in_([first, second])
                )
            ).all()
        )
        messages = session.scalar(select(PromptRow.messages).where(PromptRow.id == item.prompt_id))
        ids = item_judgment_ids(session, item=item)
        rows = session.scalars(select(ComparisonRow).where(ComparisonRow.id.in_(ids))).all()
        queue.append(
            QueueItem(
                item_id=item.id,
                prompt=list(messages or []),
                answer_a=texts.get(first, ""),
                answer_b=texts.get(second, ""),
                label=label.label,
                confidence=label.confidence,
                method=label.method,
                computed_at=label.computed_at,
                judgments=_blind(list(rows), first, excluded),
            )
        )
    return queue
