"""Snapshot a project's consensus labels, rewrites or ratings into a dataset version.

Which labels a preference version uses:

- the labels stored by the last quality analysis (`consensus_labels`), when there are
  some, `consensus` is the project's method (or not given), `exclude_flagged` is off
  and no stored label rests on a judgment of an expert excluded since;
- otherwise (a project never analysed too) the labels are computed now with the
  quality library (`analyse`), not stored: with the asked method, leaving out excluded
  experts always, and with `exclude_flagged` also the experts the analysis flags (a
  first analysis finds them, a second computes consensus without them).
  Adjudications win either way.

Items labelled tie or both_bad have no chosen answer: they are counted in the
manifest (`counts.left_out`) and left out, as are labels below `min_confidence`.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tutelage.datasets.licence import version_licence
from tutelage.datasets.splits import DEFAULT_FRACTIONS, assign_splits, check_fractions
from tutelage.datasets.versions import (
    KINDS,
    DatasetError,
    DatasetVersion,
    list_versions,
    prompt_key,
    record_id,
    write_version,
)
from tutelage.store import Store
from tutelage.store.projects import get_project
from tutelage.store.quality_tables import ConsensusLabelRow
from tutelage.store.tables import (
    ComparisonRow,
    CompletionRow,
    ImportRow,
    ProjectRow,
    PromptRow,
    RatingRow,
    RewriteRow,
)
from tutelage.store.workspace_tables import ItemRow

__all__ = ["METHODS", "SnapshotSettings", "snapshot"]

METHODS = {"dawid-skene": "dawid_skene", "dawid_skene": "dawid_skene", "majority": "majority"}


@dataclass(frozen=True)
class SnapshotSettings:
    """What goes into a version and how it is split."""

    kind: str = "preference"
    consensus: str | None = None  # "dawid-skene" or "majority"; None: the project's method
    min_confidence: float = 0.0
    exclude_flagged: bool = False
    commercial: bool = False
    seed: int = 0
    split: tuple[float, float, float] = DEFAULT_FRACTIONS

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise DatasetError(f"unknown kind {self.kind!r}; use one of {', '.join(KINDS)}")
        if self.consensus is not None and self.consensus not in METHODS:
            raise DatasetError(
                f"unknown consensus method {self.consensus!r}; use dawid-skene or majority"
            )
        if not 0.0 <= self.min_confidence <= 1.0:
            raise DatasetError(f"--min-confidence must be in [0, 1], got {self.min_confidence}")
        check_fractions(self.split)


@dataclass
class _Gathered:
    rows: list[dict[str, Any]]
    left_out: Counter[str] = field(default_factory=Counter)
    judgment_ids: dict[str, set[int]] = field(default_factory=dict)  # table -> ids
    method: str = ""
    consensus_source: str = ""
    flagged: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Label:
    """One consensus label: of an item, or of a pair (first, second) that no item shows."""

    item_id: int | None
    pair: tuple[int, int] | None
    label: str
    confidence: float
    method: str
    judgment_ids: list[int]

    def order(self) -> tuple[int, int, int]:
        """Items first by id, then pairs by their completions."""
        if self.pair is None:
            return (0, self.item_id or 0, 0)
        return (1, *self.pair)


def _stored_pair(row: ConsensusLabelRow) -> tuple[int, int] | None:
    """The pair a stored label is of, when its unit is a pair and not an item."""
    if row.item_id is not None or row.completion_a_id is None or row.completion_b_id is None:
        return None
    return (row.completion_a_id, row.completion_b_id)


def _messages_json(messages: list[Any]) -> str:
    return json.dumps(
        [{"role": str(m["role"]), "content": str(m["content"])} for m in messages],
        ensure_ascii=False,
    )


def _excluded(session: Session, project_id: int) -> set[str]:
    from tutelage.quality.load import excluded_workers

    return set(excluded_workers(session, project_id=project_id))


def _computed_labels(
    store: Store,
    project: ProjectRow,
    method: str,
    exclude_flagged: bool,
    say: Callable[[str], None],
) -> tuple[list[Any], list[str], dict[int, tuple[int, int]]]:
    """Consensus computed now (not stored), the experts flagged and left out, and the
    pairs that are units without an item (`ProjectJudgments.pairs`)."""
    from tutelage.quality.analysis import analyse
    from tutelage.quality.load import load_judgments

    with store.session() as session:
        judgments = load_judgments(session, project_id=project.id, progress=say)

    def run(excluded: frozenset[str]) -> Any:
        return analyse(
            judgments.comparisons,
            scores=judgments.scores if not judgments.scores.empty else None,
            criteria_levels=judgments.criteria_levels,
            rankings=judgments.rankings if not judgments.rankings.empty else None,
            gold=judgments.gold,
            adjudications=judgments.adjudications,
            excluded=excluded,
            method=method,
            bootstrap=0,
            progress=say,
        )

    analysis = run(judgments.excluded)
    flagged: list[str] = []
    if exclude_flagged:
        flagged = sorted({f.worker for f in analysis.flags} - judgments.excluded)
        if flagged:
            analysis = run(judgments.excluded | frozenset(flagged))
    return list(analysis.consensus), flagged, judgments.pairs


def _preference(
    store: Store, project: ProjectRow, settings: SnapshotSettings, say: Callable[[str], None]
) -> _Gathered:
    asked = METHODS[settings.consensus] if settings.consensus else project.consensus_method
    with store.session() as session:
        stored = session.scalars(
            select(ConsensusLabelRow).where(ConsensusLabelRow.project_id == project.id)
        ).all()
        excluded = _excluded(session, project.id)
        stale = False
        if excluded and stored:
            ids = [int(j) for row in stored for j in row.judgment_ids]
            experts = session.scalars(
                select(ComparisonRow.expert_id).where(ComparisonRow.id.in_(ids)).distinct()
            ).all()
            stale = any(f"expert:{e}" in excluded for e in experts if e is not None)
    flagged: list[str] = []
    use_stored = stored and not stale and not settings.exclude_flagged
    if asked == project.consensus_method and use_stored:
        labels = [
            _Label(
                r.item_id,
                _stored_pair(r),
                r.label,
                r.confidence,
                r.method,
                [int(j) for j in r.judgment_ids],
            )
            for r in stored
        ]
        source = "stored"
    else:
        say(f"computing {asked} consensus")
        computed, flagged, pairs = _computed_labels(
            store, project, asked, settings.exclude_flagged, say
        )
        labels = [
            _Label(
                c.item if c.item >= 0 else None,
                pairs[c.item] if c.item < 0 else None,
                c.label,
                float(c.confidence),
                c.method,
                [int(j) for j in c.judgment_ids],
            )
            for c in computed
        ]
        source = "computed at snapshot"
    gathered = _Gathered(rows=[], method=asked, consensus_source=source, flagged=flagged)
    with store.session() as session:
        items = {
            item.id: item
            for item in session.scalars(
                select(ItemRow).where(
                    ItemRow.project_id == project.id,
                    ItemRow.purpose == "task",
                    ItemRow.kind == "comparison",
                )
            )
        }
        completions = {
            c.id: c
            for c in session.scalars(
                select(CompletionRow)
                .join(PromptRow, PromptRow.id == CompletionRow.prompt_id)
                .where(PromptRow.project_id == project.id)
            )
        }
        prompts = {
            p.id: p
            for p in session.scalars(select(PromptRow).where(PromptRow.project_id == project.id))
        }
        used: set[int] = set()
        for unit in sorted(labels, key=_Label.order):
            if unit.pair is not None:  # imported pairs that no item shows
                first, second = (completions[int(c)] for c in unit.pair)
                prompt_id = first.prompt_id
            else:
                item = items.get(unit.item_id) if unit.item_id is not None else None
                if item is None or item.prompt_id is None:
                    gathered.left_out["not a task comparison item"] += 1
                    continue
                first, second = (completions[int(c)] for c in item.completion_ids[:2])
                prompt_id = item.prompt_id
            label, confidence = unit.label, unit.confidence
            if label not in ("a", "b"):
                gathered.left_out[label] += 1
                continue
            if confidence < settings.min_confidence:
                gathered.left_out["below min confidence"] += 1
                continue
            chosen, rejected = (first, second) if label == "a" else (second, first)
            gathered.rows.append(
                {
                    "prompt": _messages_json(prompts[prompt_id].messages),
                    "chosen": chosen.text,
                    "rejected": rejected.text,
                    "label": label,
                    "confidence": float(confidence),
                    "method": unit.method,
                    "judgment_ids": json.dumps(sorted(unit.judgment_ids)),
                    "_prompt_id": prompt_id,
                    "_completion_ids": [first.id, second.id],
                }
            )
            used.update(unit.judgment_ids)
    gathered.judgment_ids["comparisons"] = used
    return gathered


def _sft(store: Store, project: ProjectRow, left_out_workers: set[str]) -> _Gathered:
    gathered = _Gathered(rows=[])
    with store.session() as session:
        rewrites = session.execute(
            select(RewriteRow, PromptRow.messages)
            .join(PromptRow, PromptRow.id == RewriteRow.prompt_id)
            .where(RewriteRow.project_id == project.id)
            .order_by(RewriteRow.id)
        ).all()
        ids: set[int] = set()
        for rewrite, messages in rewrites:
            if rewrite.expert_id is not None and f"expert:{rewrite.expert_id}" in left_out_workers:
                gathered.left_out["rewrite by a left-out expert"] += 1
                continue
            gathered.rows.append(
                {
                    "prompt": _messages_json(messages),
                    "completion": rewrite.text,
                    "source": "rewrite",
                    "_prompt_id": rewrite.prompt_id,
                    "_completion_ids": [rewrite.completion_id],
                }
            )
            ids.add(rewrite.id)
        # Chat examples imported with an answer are demonstrations too.
        demonstrations = session.execute(
            select(CompletionRow, PromptRow.messages)
            .join(PromptRow, PromptRow.id == CompletionRow.prompt_id)
            .join(ImportRow, ImportRow.id == CompletionRow.import_id)
            .where(PromptRow.project_id == project.id, ImportRow.format == "chat")
            .order_by(CompletionRow.id)
        ).all()
        for completion, messages in demonstrations:
            gathered.rows.append(
                {
                    "prompt": _messages_json(messages),
                    "completion": completion.text,
                    "source": "demonstration",
                    "_prompt_id": completion.prompt_id,
                    "_completion_ids": [completion.id],
                }
            )
    gathered.judgment_ids["rewrites"] = ids
    return gathered


def _ratings(store: Store, project: ProjectRow, left_out_workers: set[str]) -> _Gathered:
    gathered = _Gathered(rows=[])
    by_completion: dict[int, dict[str, list[float]]] = {}
    ids: dict[int, list[int]] = {}
    with store.session() as session:
        for rating in session.scalars(
            select(RatingRow).where(RatingRow.project_id == project.id).order_by(RatingRow.id)
        ):
            if rating.expert_id is not None and f"expert:{rating.expert_id}" in left_out_workers:
                gathered.left_out["rating by a left-out expert"] += 1
                continue
            scores = by_completion.setdefault(rating.completion_id, {})
            for criterion, score in rating.scores.items():
                if isinstance(score, int | float) and not isinstance(score, bool):
                    scores.setdefault(str(criterion), []).append(float(score))
            ids.setdefault(rating.completion_id, []).append(rating.id)
        for completion_id, scores in sorted(by_completion.items()):
            completion = session.get(CompletionRow, completion_id)
            assert completion is not None
            prompt = session.get(PromptRow, completion.prompt_id)
            assert prompt is not None
            means = {c: round(sum(v) / len(v), 6) for c, v in sorted(scores.items())}
            gathered.rows.append(
                {
                    "prompt": _messages_json(prompt.messages),
                    "completion": completion.text,
                    "scores": json.dumps(means, sort_keys=True),
                    "_prompt_id": prompt.id,
                    "_completion_ids": [completion_id],
                }
            )
    gathered.judgment_ids["ratings"] = {i for group in ids.values() for i in group}
    return gathered


def _sources(
    session: Session, project: ProjectRow, gathered: _Gathered, kind: str
) -> tuple[list[dict[str, str]], dict[str, Any]]:
    """The licence sources (project and imports behind the records) and who judged."""
    prompt_ids = {int(r["_prompt_id"]) for r in gathered.rows}
    completion_ids = {int(c) for r in gathered.rows for c in r["_completion_ids"]}
    table: type[ComparisonRow] | type[RewriteRow] | type[RatingRow] = ComparisonRow
    if kind == "sft":
        table = RewriteRow
    elif kind == "ratings":
        table = RatingRow
    judgment_ids = set().union(*gathered.judgment_ids.values()) if gathered.judgment_ids else set()
    import_ids: set[int] = set()
    experts: set[int] = set()
    named: set[str] = set()
    for chunk in _chunks(sorted(prompt_ids)):
        import_ids.update(
            i
            for i in session.scalars(select(PromptRow.import_id).where(PromptRow.id.in_(chunk)))
            if i is not None
        )
    for chunk in _chunks(sorted(completion_ids)):
        import_ids.update(
            i
            for i in session.scalars(
                select(CompletionRow.import_id).where(CompletionRow.id.in_(chunk))
            )
            if i is not None
        )
    for chunk in _chunks(sorted(judgment_ids)):
        for expert_id, source, import_id in session.execute(
            select(table.expert_id, table.source, table.import_id).where(table.id.in_(chunk))
        ):
            if expert_id is not None:
                experts.add(int(expert_id))
            if source is not None:
                named.add(str(source))
            if import_id is not None:
                import_ids.add(int(import_id))
    sources = [
        {
            "source": f"project {project.name}",
            "licence": project.licence,
            "consent": project.consent,
        }
    ]
    for row in session.scalars(
        select(ImportRow).where(ImportRow.id.in_(sorted(import_ids))).order_by(ImportRow.id)
    ):
        sources.append(
            {
                "source": f"import #{row.id} {row.source} ({row.filename})",
                "licence": row.licence,
                "consent": row.consent,
            }
        )
    judges = {
        "experts": len(experts),
        "expert_ids": [f"expert:{e}" for e in sorted(experts)],
        "named_sources": sorted(named),
        "judgments": len(judgment_ids),
    }
    return sources, judges


def _what_it_has(store: Store, project_id: int, kind: str) -> str:
    """A hint for an empty snapshot: the kinds of version the project's judgments make."""
    with store.session() as session:
        counts = {
            name: int(session.scalar(select(func.count(id_)).where(project_ == project_id)) or 0)
            for name, id_, project_ in (
                ("preference", ComparisonRow.id, ComparisonRow.project_id),
                ("sft", RewriteRow.id, RewriteRow.project_id),
                ("ratings", RatingRow.id, RatingRow.project_id),
            )
        }
    others = [name for name, count in counts.items() if count and name != kind]
    if counts[kind] or not others:
        return ""
    return f"; it has {' and '.join(others)} judgments: try --kind {others[0]}"


def _chunks(values: list[int], size: int = 5000) -> list[list[int]]:
    return [values[i : i + size] for i in range(0, len(values), size)] or []


def snapshot(
    store: Store,
    *,
    project: str,
    name: str,
    settings: SnapshotSettings,
    actor: str,
    parent: DatasetVersion | None = None,
    progress: Callable[[str], None] | None = None,
) -> DatasetVersion:
    """Write the project's current labels (or rewrites, or ratings) as version `name`.

    `parent` defaults to the project's latest version of the same kind.
    """
    say = progress or (lambda _message: None)
    with store.session() as session:
        project_row = get_project(session, name=project)
        excluded = _excluded(session, project_row.id)
        if parent is None:  # the project's latest version of this kind
            earlier = [
                v for v in list_versions(session, project=project) if v.kind == settings.kind
            ]
            parent = earlier[-1] if earlier else None
    say("reading labels")
    flagged: list[str] = []
    if settings.kind == "preference":
        gathered = _preference(store, project_row, settings, say)
        flagged = gathered.flagged
    else:
        left = set(excluded)
        if settings.exclude_flagged:
            _, flagged, _ = _computed_labels(
                store, project_row, project_row.consensus_method, True, say
            )
            left.update(flagged)
        gathered = (
            _sft(store, project_row, left)
            if settings.kind == "sft"
            else _ratings(store, project_row, left)
        )
    if not gathered.rows:
        reasons = ", ".join(f"{n} {why}" for why, n in sorted(gathered.left_out.items()))
        raise DatasetError(
            f"project {project!r} has no {settings.kind} records to snapshot"
            + (f" (left out: {reasons})" if reasons else "")
            + _what_it_has(store, project_row.id, settings.kind)
        )
    say("splitting")
    frame = pd.DataFrame(gathered.rows)
    frame["prompt_key"] = [prompt_key(p) for p in frame["prompt"]]
    frame["record_id"] = [record_id(settings.kind, r) for r in frame.to_dict("records")]
    # Two items with the same content make one record: keep the surer label.
    if "confidence" in frame.columns:
        frame = frame.sort_values("confidence", ascending=False, kind="stable")
    duplicated = frame["record_id"].duplicated()
    if duplicated.any():
        gathered.left_out["duplicate content"] += int(duplicated.sum())
        frame = frame[~duplicated]
    gathered.rows = frame.to_dict("records")
    splits = assign_splits(frame["prompt_key"], fractions=settings.split, seed=settings.seed)
    frame["split"] = [splits[k] for k in frame["prompt_key"]]
    with store.session() as session:
        sources, judges = _sources(session, project_row, gathered, settings.kind)
    manifest_extra: dict[str, Any] = {
        "source_project": project,
        "counts": {"left_out": dict(sorted(gathered.left_out.items()))},
        "filters": {
            "min_confidence": settings.min_confidence,
            "exclude_flagged": settings.exclude_flagged,
            "excluded_experts": sorted(excluded),
            "flagged_experts_left_out": flagged,
        },
        "consensus": (
            {"method": gathered.method, "labels": gathered.consensus_source}
            if settings.kind == "preference"
            else None
        ),
        "judges": judges,
        "licence": version_licence(sources, commercial=settings.commercial),
        "commercial": settings.commercial,
        "split": {
            "seed": settings.seed,
            "fractions": dict(zip(("train", "validation", "test"), settings.split, strict=True)),
            "grouped_by": "prompt",
        },
    }
    say("writing")
    records = frame.drop(columns=[c for c in frame.columns if c.startswith("_")])
    return write_version(
        store,
        name=name,
        kind=settings.kind,
        project=project,
        records=records,
        parent=parent,
        manifest_extra=manifest_extra,
        actor=actor,
    )
