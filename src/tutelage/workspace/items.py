"""Items: the units of work experts are served, built from a project's prompts and answers.

- comparison: each pair among a prompt's first `max_answers` completions;
- ranking: a prompt's first `max_answers` completions, when it has three or more;
- rating, flag: each completion;
- rewrite: a prompt's first two completions (the expert edits the better one);
- redteam: empty slots, each asking for a new prompt.

Gold and qualification items are comparisons whose winner is known, taken from
imported comparisons (an external source's chosen answer is the known answer).
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from tutelage.records import TaskKind
from tutelage.store.tables import ComparisonRow, CompletionRow, PromptRow
from tutelage.store.workspace_tables import ItemRow
from tutelage.workspace import audit
from tutelage.workspace.views import render_answers

__all__ = ["BuiltItems", "build_items", "mark_known_answers"]


@dataclass(frozen=True)
class BuiltItems:
    created: dict[str, int]


def _completions_by_prompt(session: Session, project_id: int) -> dict[int, list[int]]:
    rows = session.execute(
        select(CompletionRow.prompt_id, CompletionRow.id)
        .join(PromptRow, PromptRow.id == CompletionRow.prompt_id)
        .where(PromptRow.project_id == project_id)
        .order_by(CompletionRow.prompt_id, CompletionRow.id)
    ).all()
    grouped: dict[int, list[int]] = defaultdict(list)
    for prompt_id, completion_id in rows:
        grouped[prompt_id].append(completion_id)
    return grouped


def _planned(kind: TaskKind, answers: list[int], max_answers: int) -> list[list[int]]:
    first = answers[:max_answers]
    if kind is TaskKind.COMPARISON:
        return [list(pair) for pair in itertools.combinations(first, 2)]
    if kind is TaskKind.RANKING:
        return [first] if len(first) >= 3 else []
    if kind in (TaskKind.RATING, TaskKind.FLAG):
        return [[answer] for answer in answers]
    if kind is TaskKind.REWRITE:
        return [answers[:2]] if answers else []
    return []


def build_items(
    session: Session,
    *,
    project_id: int,
    kinds: tuple[TaskKind, ...],
    actor_id: int | None,
    max_answers: int = 4,
    redteam_slots: int = 0,
) -> BuiltItems:
    """Create the task items the project's content allows and does not have yet."""
    existing = {
        (kind, prompt_id, tuple(completion_ids))
        for kind, prompt_id, completion_ids in session.execute(
            select(ItemRow.kind, ItemRow.prompt_id, ItemRow.completion_ids).where(
                ItemRow.project_id == project_id
            )
        ).all()
    }
    created: dict[str, int] = defaultdict(int)
    # every item's answers: those of new items, and those of old ones stored before
    # answers were rendered ahead or by another renderer (`render_answers` skips the rest)
    rendered = {answer for _, _, answers in existing for answer in answers}
    grouped = _completions_by_prompt(session, project_id)
    for kind in kinds:
        if kind is TaskKind.REDTEAM:
            for _ in range(redteam_slots):
                session.add(ItemRow(project_id=project_id, kind=kind.value))
                created[kind.value] += 1
            continue
        for prompt_id, answers in grouped.items():
            for completion_ids in _planned(kind, answers, max_answers):
                key = (kind.value, prompt_id, tuple(completion_ids))
                if key in existing:
                    continue
                existing.add(key)
                rendered.update(completion_ids)
                session.add(
                    ItemRow(
                        project_id=project_id,
                        kind=kind.value,
                        prompt_id=prompt_id,
                        completion_ids=completion_ids,
                    )
                )
                created[kind.value] += 1
    session.flush()
    render_answers(session, rendered)
    audit.record(
        session,
        actor_id=actor_id,
        action="items.build",
        project_id=project_id,
        details={"created": dict(created)},
    )
    return BuiltItems(created=dict(created))


def mark_known_answers(
    session: Session,
    *,
    project_id: int,
    purpose: str,
    count: int,
    source: str | None = None,
    actor_id: int | None,
) -> int:
    """Turn up to `count` imported comparisons with a winner into gold or qualification items.

    The comparison's pair becomes an item whose known answer is its winner; the pair's
    ordinary comparison item, if any, is left as it is. Returns how many were made.
    """
    if purpose not in ("gold", "qualification"):
        raise ValueError("purpose must be 'gold' or 'qualification'")
    used = {
        tuple(sorted(ids))
        for (ids,) in session.execute(
            select(ItemRow.completion_ids).where(
                ItemRow.project_id == project_id, ItemRow.purpose != "task"
            )
        ).all()
    }
    query = (
        select(ComparisonRow)
        .where(
            ComparisonRow.project_id == project_id,
            ComparisonRow.source.is_not(None),
            ComparisonRow.outcome.in_(("a", "b")),
        )
        .order_by(ComparisonRow.id)
    )
    if source is not None:
        query = query.where(ComparisonRow.source == source)
    made = 0
    for comparison in session.scalars(query):
        if made >= count:
            break
        pair = [comparison.completion_a_id, comparison.completion_b_id]
        if tuple(sorted(pair)) in used:
            continue
        used.add(tuple(sorted(pair)))
        winner = pair[0] if comparison.outcome == "a" else pair[1]
        session.add(
            ItemRow(
                project_id=project_id,
                kind=TaskKind.COMPARISON.value,
                purpose=purpose,
                prompt_id=comparison.prompt_id,
                completion_ids=pair,
                gold_answer={"winner": winner},
            )
        )
        made += 1
    session.flush()
    audit.record(
        session,
        actor_id=actor_id,
        action=f"items.{purpose}",
        project_id=project_id,
        details={"made": made, "source": source},
    )
    return made
