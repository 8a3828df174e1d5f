"""New candidate completions for a project's prompts, from any generation back end."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select

from tutelage.generation.backend import GenerationBackend
from tutelage.records import Completion
from tutelage.store import Store
from tutelage.store.projects import get_project, prompt_record
from tutelage.store.tables import CompletionRow, PromptRow
from tutelage.store.writer import RecordWriter

__all__ = ["CandidateReport", "add_candidates", "prompts_needing_candidates"]


@dataclass
class CandidateReport:
    """How many prompts needed candidates and how many completions were stored."""

    prompts: int = 0
    completions_added: int = 0
    duplicates: int = 0


def prompts_needing_candidates(
    store: Store, *, project: str, n: int, limit: int | None = None
) -> list[tuple[int, int]]:
    """Return (prompt id, completions still needed) for prompts with fewer than `n`."""
    with store.session() as session:
        project_id = get_project(session, name=project).id
        have = func.count(CompletionRow.id)
        query = (
            select(PromptRow.id, have)
            .outerjoin(CompletionRow, CompletionRow.prompt_id == PromptRow.id)
            .where(PromptRow.project_id == project_id)
            .group_by(PromptRow.id)
            .having(have < n)
            .order_by(PromptRow.id)
        )
        if limit is not None:
            query = query.limit(limit)
        return [(prompt_id, n - count) for prompt_id, count in session.execute(query).all()]


def add_candidates(
    store: Store,
    *,
    project: str,
    backend: GenerationBackend,
    n: int = 2,
    temperature: float = 0.7,
    max_new_tokens: int = 256,
    seed: int | None = None,
    batch_size: int = 8,
    limit: int | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> CandidateReport:
    """Generate completions until each prompt of `project` has `n`; returns the counts.

    Each batch is committed as it finishes, so an interrupted run keeps what it made.
    """
    if n < 1:
        raise ValueError("n must be at least 1")
    needed = prompts_needing_candidates(store, project=project, n=n, limit=limit)
    report = CandidateReport(prompts=len(needed))
    for start in range(0, len(needed), batch_size):
        batch = needed[start : start + batch_size]
        # Read, generate, then write: a session holds SQLite's writer from its start, and
        # the experts' submits must not wait while a model writes answers.
        with store.session() as session:
            project_id = get_project(session, name=project).id
            messages: dict[int, list[Any]] = dict(
                session.execute(
                    select(PromptRow.id, PromptRow.messages).where(
                        PromptRow.id.in_([prompt_id for prompt_id, _ in batch])
                    )
                ).all()
            )
        prompts = [prompt_record(messages[prompt_id]) for prompt_id, _ in batch]
        most = max(missing for _, missing in batch)
        batch_seed = None if seed is None else seed + start
        outputs = backend.generate(
            prompts,
            n=most,
            temperature=temperature,
            max_new_tokens=max_new_tokens,
            seed=batch_seed,
        )
        with store.session() as session:
            writer = RecordWriter(session, project_id=project_id)
            for (prompt_id, missing), completions in zip(batch, outputs, strict=True):
                for completion in completions[:missing]:
                    _store(writer, prompt_id, completion, report)
        if on_batch is not None:
            on_batch(len(batch))
    return report


def _store(
    writer: RecordWriter, prompt_id: int, completion: Completion, report: CandidateReport
) -> None:
    before = writer.completions_added
    writer.completion_id(prompt_id, completion)
    if writer.completions_added > before:
        report.completions_added += 1
    else:
        report.duplicates += 1
