"""A project's judgments read from the store into the frames `tutelage.quality` analyses.

Columns are read with a few set-based queries (no ORM objects), so a million
comparisons load in seconds. Labels are turned into each item's canonical order: a
comparison row's `completion_a_id` is the answer that was *shown* as A, while the item's
first completion is canonical "a"; when the two differ the expert saw the item swapped.

Expert judgments name their item in `shown["item"]`. Imported comparisons (a named
source such as ``hh-rlhf``) have no item; they count, as a worker ``source:NAME``, for
the project's comparison item of the same pair, or, where no item shows the pair, for
the pair itself: a unit with a negative number (`ProjectJudgments.pairs`). Answers to gold and
qualification items are not units of agreement or consensus: they feed gold accuracy.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import pandas as pd
from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from tutelage.store.engine import StoreError
from tutelage.store.quality_tables import AdjudicationRow, ExclusionRow
from tutelage.store.tables import ComparisonRow, ProjectRow, RankingRow, RatingRow, UserRow
from tutelage.store.workspace_tables import AssignmentRow, ItemRow

__all__ = ["STRENGTHS", "ProjectJudgments", "expert_worker", "load_judgments", "source_worker"]

STRENGTHS = {"slight": 1.0, "clear": 2.0, "decisive": 3.0}

COMPARISON_COLUMNS = [
    "judgment_id", "item", "worker", "label", "swapped", "strength", "active_seconds",
    "first", "second",
]  # fmt: skip
SCORE_COLUMNS = ["judgment_id", "item", "worker", "criterion", "score"]
RANKING_COLUMNS = ["judgment_id", "item", "worker", "order"]


def expert_worker(user_id: int) -> str:
    """The pseudonymous worker id of an expert in the frames: ``expert:<user id>``."""
    return f"expert:{user_id}"


def source_worker(source: str) -> str:
    """The worker id of an imported data set: ``source:<name>``."""
    return f"source:{source}"


@dataclass(frozen=True)
class ProjectJudgments:
    """What `tutelage.quality.analyse` needs about one project, and what was left out.

    `names` maps each worker id to what an admin recognises (a handle or a source
    name); `left_out` counts judgments that are not in the frames, by reason. `pairs`
    maps each negative unit of the frames, a pair of completions that only imported
    comparisons judge and no item shows, to that pair (first, second), lower id first.
    """

    project_id: int
    project: str
    method: str
    adjudication_threshold: float
    comparisons: pd.DataFrame
    scores: pd.DataFrame
    criteria_levels: dict[str, str]
    rankings: pd.DataFrame
    gold: dict[str, tuple[int, int]]
    adjudications: dict[int, str]
    excluded: frozenset[str]
    names: dict[str, str]
    left_out: dict[str, int] = field(default_factory=dict)
    pairs: dict[int, tuple[int, int]] = field(default_factory=dict)


def _frame(session: Session, query: Any, columns: list[str]) -> pd.DataFrame:
    # Plain DBAPI tuples, column by column: the columns read need no type conversion, and
    # building a Row per judgment (or pandas probing each Row) costs more than the query.
    rows = session.connection().execute(query).cursor.fetchall()
    if not rows:
        return pd.DataFrame({name: pd.Series(dtype=object) for name in columns})
    return pd.DataFrame(dict(zip(columns, zip(*rows, strict=True), strict=True)))


def _items(session: Session, project_id: int) -> pd.DataFrame:
    items = ItemRow.__table__.c
    return _frame(
        session,
        select(
            items.id,
            items.kind,
            items.purpose,
            items.completion_ids[0].as_integer(),
            items.completion_ids[1].as_integer(),
        ).where(items.project_id == project_id),
        ["item", "kind", "purpose", "first", "second"],
    )


_LABELS = np.array(["a", "b", "tie", "both_bad"], dtype=object)
_COMPARISON_ROW = np.dtype(
    [("judgment_id", "i8"), ("expert_id", "i8"), ("shown_a", "i8"), ("shown_b", "i8"),
     ("outcome", "i1"), ("strength", "i1"), ("active_seconds", "f8"), ("item", "i8")]
)  # fmt: skip


def _read_comparisons(session: Session, project_id: int) -> np.ndarray:
    """The project's comparisons as a structured array: numbers only, read straight off the
    DBAPI cursor (a Row or a pandas cell per value would cost more than the query).

    outcome: index into _LABELS; strength: 1 to 3, 0 when absent; expert_id and item:
    -1 when absent.
    """
    rows = ComparisonRow.__table__.c
    query = (
        select(
            rows.id,
            func.coalesce(rows.expert_id, -1),
            rows.completion_a_id,
            rows.completion_b_id,
            case({label: code for code, label in enumerate(_LABELS)}, value=rows.outcome),
            case({name: int(v) for name, v in STRENGTHS.items()}, value=rows.strength, else_=0),
            rows.active_seconds,
            func.coalesce(rows.shown["item"].as_integer(), -1),
        )
        .where(rows.project_id == project_id)
        .order_by(rows.id)
    )
    cursor = session.connection().execute(query).cursor
    return np.fromiter(cast(Iterable[tuple[Any, ...]], cursor), dtype=_COMPARISON_ROW)


def _comparisons(
    session: Session,
    project_id: int,
    items: pd.DataFrame,
    left_out: Counter[str],
    found_pairs: dict[int, tuple[int, int]],
) -> pd.DataFrame:
    """The comparison frame; `found_pairs` receives the pairs that are units without an item."""
    raw = _read_comparisons(session, project_id)
    if len(raw) == 0:
        return pd.DataFrame({name: pd.Series(dtype=object) for name in COMPARISON_COLUMNS})
    pairs = items[items["kind"] == "comparison"].astype({"first": np.int64, "second": np.int64})
    item = raw["item"].copy()
    no_item = item < 0
    if no_item.any():
        # Judgments without an item (imported ones) count for the item of the same pair,
        # its task item when it has one besides a gold or qualification item.
        ordered = pairs.sort_values("purpose", key=lambda p: p != "task", kind="stable")
        by_pair = pd.Series(
            ordered["item"].to_numpy(dtype=np.int64),
            index=pd.MultiIndex.from_arrays(
                [
                    np.minimum(ordered["first"], ordered["second"]),
                    np.maximum(ordered["first"], ordered["second"]),
                ]
            ),
            dtype=np.int64,
        )
        by_pair = by_pair[~by_pair.index.duplicated()]
        lo = np.minimum(raw["shown_a"][no_item], raw["shown_b"][no_item])
        hi = np.maximum(raw["shown_a"][no_item], raw["shown_b"][no_item])
        found = by_pair.reindex(pd.MultiIndex.from_arrays([lo, hi])).to_numpy(dtype=np.float64)
        item[no_item] = np.where(np.isnan(found), -1, found).astype(np.int64)
        # A pair no item shows is a unit of its own, numbered -1, -2, ... in pair order.
        alone = np.isnan(found)
        if alone.any():
            units, inverse = np.unique(
                np.stack([lo[alone], hi[alone]], axis=1), axis=0, return_inverse=True
            )
            where = np.flatnonzero(no_item)[alone]
            item[where] = -1 - inverse.reshape(-1)
            unit_pairs = pd.DataFrame(
                {
                    "item": -1 - np.arange(len(units), dtype=np.int64),
                    "kind": "comparison",
                    "purpose": "task",
                    "first": units[:, 0],
                    "second": units[:, 1],
                }
            )
            pairs = pd.concat([pairs, unit_pairs], ignore_index=True)
            found_pairs.update(
                {
                    int(u): (int(a), int(b))
                    for u, a, b in unit_pairs[["item", "first", "second"]].itertuples(index=False)
                }
            )
    # Each judgment's item: its purpose and canonical pair (-1: not a comparison item here).
    position = pd.Index(pairs["item"].to_numpy()).get_indexer(item)
    known = position >= 0
    purpose = np.where(known, pairs["purpose"].to_numpy(dtype=object)[position], "other")
    for kind, count in Counter(purpose[purpose != "task"]).items():
        named = "non-comparison" if kind == "other" else str(kind)
        left_out[f"judgments on {named} items"] += int(count)
    first = np.where(known, pairs["first"].to_numpy(dtype=np.int64)[position], -1)
    second = np.where(known, pairs["second"].to_numpy(dtype=np.int64)[position], -1)
    same = (raw["shown_a"] == first) & (raw["shown_b"] == second)
    swapped = (raw["shown_a"] == second) & (raw["shown_b"] == first)
    keep = (purpose == "task") & (same | swapped)
    mismatched = int(((purpose == "task") & ~(same | swapped)).sum())
    if mismatched:
        left_out["comparisons of another pair than their item's"] += mismatched
    raw, item, first, second, swapped = (
        raw[keep],
        item[keep],
        first[keep],
        second[keep],
        swapped[keep],
    )
    outcome = raw["outcome"].astype(np.int64)
    label = np.where(swapped & (outcome < 2), 1 - outcome, outcome)
    return pd.DataFrame(
        {
            "judgment_id": raw["judgment_id"],
            "item": item,
            "worker": _workers(session, project_id, raw),
            "label": _LABELS[label],
            "swapped": swapped,
            "strength": np.where(raw["strength"] > 0, raw["strength"], np.nan),
            "active_seconds": raw["active_seconds"],
            "first": first,
            "second": second,
        }
    )


def _workers(session: Session, project_id: int, raw: np.ndarray) -> np.ndarray:
    """Worker ids: ``expert:<id>`` where an expert judged, else ``source:<name>``."""
    workers = np.empty(len(raw), dtype=object)
    experts = raw["expert_id"]
    uniques, inverse = np.unique(experts, return_inverse=True)
    names = np.array([expert_worker(int(uid)) for uid in uniques], dtype=object)
    workers[:] = names[inverse]
    imported = experts < 0
    if imported.any():
        rows = ComparisonRow.__table__.c
        sources = dict(
            session.connection()
            .execute(
                select(rows.id, rows.source).where(
                    rows.project_id == project_id, rows.expert_id.is_(None)
                )
            )
            .cursor.fetchall()
        )
        workers[imported] = [source_worker(sources[int(i)]) for i in raw["judgment_id"][imported]]
    return workers


def _task_items_of(items: pd.DataFrame, kind: str) -> set[int]:
    chosen = items[(items["kind"] == kind) & (items["purpose"] == "task")]
    return {int(item) for item in chosen["item"]}


def _scores(
    session: Session, project_id: int, items: pd.DataFrame, left_out: Counter[str]
) -> pd.DataFrame:
    rows = RatingRow.__table__.c
    raw = session.execute(
        select(rows.id, rows.expert_id, rows.source, rows.shown["item"].as_integer(), rows.scores)
        .where(rows.project_id == project_id)
        .order_by(rows.id)
    ).all()
    rating_items = _task_items_of(items, "rating")
    records: list[tuple[int, int, str, str, float]] = []
    for judgment_id, expert_id, source, item, scores in raw:
        if item is None or item not in rating_items:
            left_out["ratings of no rating task item"] += 1
            continue
        worker = expert_worker(expert_id) if expert_id is not None else source_worker(source)
        records.extend(
            (judgment_id, item, worker, criterion, float(score))
            for criterion, score in scores.items()
        )
    return pd.DataFrame.from_records(records, columns=SCORE_COLUMNS)


def _rankings(
    session: Session, project_id: int, items: pd.DataFrame, left_out: Counter[str]
) -> pd.DataFrame:
    rows = RankingRow.__table__.c
    raw = session.execute(
        select(
            rows.id,
            rows.expert_id,
            rows.source,
            rows.shown["item"].as_integer(),
            rows.completion_order,
        )
        .where(rows.project_id == project_id)
        .order_by(rows.id)
    ).all()
    ranking_items = _task_items_of(items, "ranking")
    records = []
    for judgment_id, expert_id, source, item, order in raw:
        if item is None or item not in ranking_items:
            left_out["rankings of no ranking task item"] += 1
            continue
        worker = expert_worker(expert_id) if expert_id is not None else source_worker(source)
        records.append((judgment_id, item, worker, [int(c) for c in order]))
    return pd.DataFrame.from_records(records, columns=RANKING_COLUMNS)


def _gold(session: Session, project_id: int) -> dict[str, tuple[int, int]]:
    rows = session.execute(
        select(
            AssignmentRow.user_id,
            func.count(AssignmentRow.id),
            func.count(AssignmentRow.id).filter(AssignmentRow.correct.is_(True)),
        )
        .join(ItemRow, ItemRow.id == AssignmentRow.item_id)
        .where(
            AssignmentRow.project_id == project_id,
            AssignmentRow.status == "submitted",
            ItemRow.purpose == "gold",
        )
        .group_by(AssignmentRow.user_id)
    ).all()
    return {expert_worker(uid): (int(answered), int(right)) for uid, answered, right in rows}


def excluded_workers(session: Session, *, project_id: int) -> frozenset[str]:
    """The workers whose exclusion from the project is in force."""
    users = session.scalars(
        select(ExclusionRow.user_id).where(
            ExclusionRow.project_id == project_id, ExclusionRow.lifted_at.is_(None)
        )
    )
    return frozenset(expert_worker(uid) for uid in users)


def _names(session: Session, workers: set[str]) -> dict[str, str]:
    ids = [int(w.split(":", 1)[1]) for w in workers if w.startswith("expert:")]
    handles: dict[int, str] = {
        uid: handle
        for uid, handle in session.execute(
            select(UserRow.id, UserRow.handle).where(UserRow.id.in_(ids))
        )
    }
    names = {}
    for worker in workers:
        kind, key = worker.split(":", 1)
        names[worker] = handles.get(int(key), worker) if kind == "expert" else f"{key} (imported)"
    return names


def load_judgments(
    session: Session, *, project_id: int, progress: Callable[[str], None] | None = None
) -> ProjectJudgments:
    """Read one project's judgments, gold answers, adjudications and exclusions."""
    project = session.get(ProjectRow, project_id)
    if project is None:
        raise StoreError(f"no project with id {project_id}")
    say = progress or (lambda _message: None)
    left_out: Counter[str] = Counter()
    say("reading items")
    items = _items(session, project_id)
    say("reading comparisons")
    pairs: dict[int, tuple[int, int]] = {}
    comparisons = _comparisons(session, project_id, items, left_out, pairs)
    say("reading ratings and rankings")
    scores = _scores(session, project_id, items, left_out)
    rankings = _rankings(session, project_id, items, left_out)
    gold = _gold(session, project_id)
    adjudications = {
        int(item): str(label)
        for item, label in session.execute(
            select(AdjudicationRow.item_id, AdjudicationRow.label).where(
                AdjudicationRow.project_id == project_id
            )
        )
    }
    excluded = excluded_workers(session, project_id=project_id)
    workers = (
        set(comparisons["worker"].unique())
        | set(scores["worker"].unique())
        | set(rankings["worker"].unique())
        | set(gold)
        | set(excluded)
    )
    return ProjectJudgments(
        project_id=project_id,
        project=project.name,
        method=project.consensus_method,
        adjudication_threshold=project.adjudication_threshold,
        comparisons=comparisons,
        scores=scores,
        criteria_levels={c["name"]: "ordinal" for c in project.rubric},  # Likert scales
        rankings=rankings,
        gold=gold,
        adjudications=adjudications,
        excluded=excluded,
        names=_names(session, {str(w) for w in workers}),
        left_out=dict(left_out),
        pairs=pairs,
    )
