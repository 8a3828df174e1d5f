"""`tutelage export`: a project's records to a file other tools read."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, aliased

from tutelage.formats import FORMATS, Container, FormatError, container_for, write_file
from tutelage.records import ChatExample, PreferencePair, Strength
from tutelage.store import Store
from tutelage.store.projects import completion_record, get_project, prompt_record
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
    rows = session.execute(
        select(ComparisonRow.outcome, ComparisonRow.strength, PromptRow.messages, a, b)
        .join(PromptRow, ComparisonRow.prompt_id == PromptRow.id)
        .join(a, ComparisonRow.completion_a_id == a.id)
        .join(b, ComparisonRow.completion_b_id == b.id)
        .where(ComparisonRow.project_id == project_id)
        .order_by(ComparisonRow.id)
        .execution_options(yield_per=1000)
    )
    for outcome, strength, messages, row_a, row_b in rows:
        if outcome not in ("a", "b"):
            # A tie or "both bad" has no chosen answer; preference formats cannot carry it.
            report.left_out[f"comparisons judged {outcome}"] += 1
            continue
        chosen, rejected = (row_a, row_b) if outcome == "a" else (row_b, row_a)
        yield PreferencePair(
            prompt=prompt_record(messages),
            chosen=completion_record(chosen),
            rejected=completion_record(rejected),
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

    The file appears only when complete: an error leaves no partial output.
    """
    if fmt not in FORMATS:
        raise FormatError(
            str(out), None, None, f"unknown format {fmt!r}; known: {', '.join(FORMATS)}"
        )
    kind = container_for(out, container)
    report = ExportReport(project=project, format=fmt, container=kind, out=str(out))
    with store.session() as session:
        project_id = get_project(session, name=project).id
        records: Iterator[PreferencePair] | Iterator[ChatExample]
        if fmt in PREFERENCE_FORMATS:
            records = _preference_pairs(session, project_id, report)
        else:
            records = _chat_prompts(session, project_id)
        report.written = write_file(out, fmt, records, kind)
    return report
