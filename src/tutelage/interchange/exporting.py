"""`tutelage export`: a project's records to a file other tools read."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, aliased

from tutelage.formats import FORMATS, Container, FormatError, container_for, write_file
from tutelage.records import ChatExample, Completion, PreferencePair, Prompt, Strength
from tutelage.store import Store
from tutelage.store.projects import get_project, prompt_record
from tutelage.store.tables import ComparisonRow, CompletionRow, PromptRow

__all__ = ["ExportReport", "export_project"]

PREFERENCE_FORMATS = ("trl", "trl-text", "hh-rlhf")


@dataclass
class ExportReport:
    """What an export wrote, and what it left out and why."""

    project: str
    format: str
    container: Container
    out: str
    written: int = 0
    left_out: Counter[str] = field(default_factory=Counter)


def _preference_pairs(
    session: Session, project_id: int, report: ExportReport
) -> Iterator[PreferencePair]:
    """Yield each decided comparison as chosen/rejected, in the order they were stored."""
    a = aliased(CompletionRow)
    b = aliased(CompletionRow)
    completion = (CompletionRow.text, CompletionRow.model_id, CompletionRow.model_version)
    columns = [getattr(side, c.key) for side in (a, b) for c in completion]
    rows = session.execute(
        select(ComparisonRow.outcome, ComparisonRow.strength, ComparisonRow.prompt_id, *columns)
        .join(a, ComparisonRow.completion_a_id == a.id)
        .join(b, ComparisonRow.completion_b_id == b.id)
        .where(ComparisonRow.project_id == project_id)
        .order_by(ComparisonRow.id)
        .execution_options(yield_per=2000)
    )
    # Many experts judge each prompt: read and build each prompt once, not once a row,
    # fetching a batch's missing prompts in one query.
    prompts: dict[int, Prompt] = {}
    for batch in rows.partitions():
        if len(prompts) > 100_000:
            prompts.clear()
        missing = {row[2] for row in batch} - prompts.keys()
        if missing:
            found = session.execute(
                select(PromptRow.id, PromptRow.messages).where(PromptRow.id.in_(missing))
            ).all()
            prompts.update((prompt_id, prompt_record(messages)) for prompt_id, messages in found)
        yield from _pairs(batch, prompts, report)


def _pairs(
    batch: Sequence[Sequence[Any]], prompts: dict[int, Prompt], report: ExportReport
) -> Iterator[PreferencePair]:
    for outcome, strength, prompt_id, *texts in batch:
        if outcome not in ("a", "b"):
            # A tie or "both bad" has no chosen answer; preference formats cannot carry it.
            report.left_out[f"comparisons judged {outcome}"] += 1
            continue
        prompt = prompts[prompt_id]
        answer_a = Completion(text=texts[0], model_id=texts[1], model_version=texts[2])
        answer_b = Completion(text=texts[3], model_id=texts[4], model_version=texts[5])
        chosen, rejected = (answer_a, answer_b) if outcome == "a" else (answer_b, answer_a)
        yield PreferencePair(
            prompt=prompt,
            chosen=chosen,
            rejected=rejected,
            strength=Strength(strength) if strength else None,
        )


def _chat_prompts(session: Session, project_id: int) -> Iterator[ChatExample]:
    rows = session.scalars(
        select(PromptRow.messages)
        .where(PromptRow.project_id == project_id)
        .order_by(PromptRow.id)
        .execution_options(yield_per=1000)
    )
    for messages in rows:
        yield ChatExample(prompt=prompt_record(messages))


def export_project(
    store: Store,
    *,
    project: str,
    fmt: str,
    out: Path,
    container: str | None = None,
) -> ExportReport:
    """Write the project's comparisons (preference formats) or prompts (``chat``) to `out`.

    The file appears only when complete: an error leaves no partial output. The export
    reads one snapshot without taking SQLite's writer, so experts keep submitting.
    """
    if fmt not in FORMATS:
        raise FormatError(
            str(out), None, None, f"unknown format {fmt!r}; known: {', '.join(FORMATS)}"
        )
    kind = container_for(out, container)
    report = ExportReport(project=project, format=fmt, container=kind, out=str(out))
    # a read from one snapshot that holds no writer: the workspace keeps taking judgments
    with store.read_session() as session:
        project_id = get_project(session, name=project).id
        records: Iterator[PreferencePair] | Iterator[ChatExample]
        if fmt in PREFERENCE_FORMATS:
            records = _preference_pairs(session, project_id, report)
        else:
            records = _chat_prompts(session, project_id)
        report.written = write_file(out, fmt, records, kind)
    return report
