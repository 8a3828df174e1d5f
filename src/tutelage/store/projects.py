"""Projects in the store: create, find, summarise; and rows turned back into records."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tutelage.records import Completion, Message, Project, Prompt, RubricCriterion, TaskKind
from tutelage.store.engine import StoreError
from tutelage.store.tables import (
    ComparisonRow,
    CompletionRow,
    FlagRow,
    ImportRow,
    ProjectRow,
    PromptRow,
    RankingRow,
    RatingRow,
    RewriteRow,
)

__all__ = [
    "ProjectNotFound",
    "ProjectSummary",
    "apply_project",
    "completion_record",
    "create_project",
    "get_project",
    "list_projects",
    "project_record",
    "project_summary",
    "prompt_record",
]


class ProjectNotFound(StoreError):
    """No project of that name in this store."""


def create_project(session: Session, *, project: Project) -> ProjectRow:
    """Store a new project; a project of the same name is an error."""
    if session.scalar(select(ProjectRow.id).where(ProjectRow.name == project.name)) is not None:
        raise StoreError(f"a project named {project.name!r} exists already")
    row = ProjectRow(name=project.name)
    apply_project(row, project)
    session.add(row)
    session.flush()
    return row


def apply_project(row: ProjectRow, project: Project) -> None:
    """Copy every setting of `project` onto `row` (the name included)."""
    row.name = project.name
    row.domain = project.domain
    row.instructions = project.instructions
    row.rubric = [c.model_dump() for c in project.rubric]
    row.task_kinds = [kind.value for kind in project.task_kinds]
    row.overlap = project.overlap
    row.required_expertise = sorted(project.required_expertise)
    row.rationale_required = project.rationale_required
    row.qualification_pass_mark = project.qualification_pass_mark
    row.gold_rate = project.gold_rate
    row.lease_seconds = project.lease_seconds
    row.consensus_method = project.consensus_method
    row.adjudication_threshold = project.adjudication_threshold
    row.pay_rate_per_hour = project.pay_rate_per_hour
    row.currency = project.currency
    row.nda_text = project.nda_text
    row.licence = project.licence
    row.consent = project.consent


def get_project(session: Session, *, name: str) -> ProjectRow:
    """Return the project called `name`, or raise ProjectNotFound listing the ones there are."""
    row = session.scalar(select(ProjectRow).where(ProjectRow.name == name))
    if row is None:
        known = session.scalars(select(ProjectRow.name).order_by(ProjectRow.name).limit(20)).all()
        hint = f"; projects in this store: {', '.join(known)}" if known else "; the store has none"
        raise ProjectNotFound(f"no project named {name!r}{hint}")
    return row


def list_projects(session: Session) -> list[ProjectRow]:
    return list(session.scalars(select(ProjectRow).order_by(ProjectRow.name)))


@dataclass(frozen=True)
class ProjectSummary:
    """Counts of what a project holds."""

    name: str
    domain: str
    imports: int
    prompts: int
    completions: int
    judgments: dict[str, int]
    outcomes: dict[str, int]
    prompts_with_fewer_than_two_completions: int


def project_summary(session: Session, *, name: str) -> ProjectSummary:
    project = get_project(session, name=name)

    def count(column: Any, *where: Any) -> int:
        return int(session.scalar(select(func.count(column)).where(*where)) or 0)

    completions_per_prompt = (
        select(PromptRow.id, func.count(CompletionRow.id).label("n"))
        .outerjoin(CompletionRow, CompletionRow.prompt_id == PromptRow.id)
        .where(PromptRow.project_id == project.id)
        .group_by(PromptRow.id)
        .subquery()
    )
    judgments = {
        kind: count(table.id, table.project_id == project.id)
        for kind, table in (
            ("comparisons", ComparisonRow),
            ("rankings", RankingRow),
            ("ratings", RatingRow),
            ("rewrites", RewriteRow),
            ("flags", FlagRow),
        )
    }
    outcomes = dict(
        session.execute(
            select(ComparisonRow.outcome, func.count())
            .where(ComparisonRow.project_id == project.id)
            .group_by(ComparisonRow.outcome)
        ).all()
    )
    return ProjectSummary(
        name=project.name,
        domain=project.domain,
        imports=count(ImportRow.id, ImportRow.project_id == project.id),
        prompts=count(PromptRow.id, PromptRow.project_id == project.id),
        completions=int(
            session.scalar(
                select(func.count(CompletionRow.id))
                .join(PromptRow, CompletionRow.prompt_id == PromptRow.id)
                .where(PromptRow.project_id == project.id)
            )
            or 0
        ),
        judgments=judgments,
        outcomes=outcomes,
        prompts_with_fewer_than_two_completions=count(
            completions_per_prompt.c.id, completions_per_prompt.c.n < 2
        ),
    )


def project_record(row: ProjectRow) -> Project:
    return Project(
        name=row.name,
        domain=row.domain,
        instructions=row.instructions,
        rubric=tuple(RubricCriterion(**c) for c in row.rubric),
        task_kinds=tuple(TaskKind(kind) for kind in row.task_kinds),
        overlap=row.overlap,
        required_expertise=frozenset(row.required_expertise),
        rationale_required=row.rationale_required,
        qualification_pass_mark=row.qualification_pass_mark,
        gold_rate=row.gold_rate,
        lease_seconds=row.lease_seconds,
        consensus_method=row.consensus_method,
        adjudication_threshold=row.adjudication_threshold,
        pay_rate_per_hour=row.pay_rate_per_hour,
        currency=row.currency,
        nda_text=row.nda_text,
        licence=row.licence,
        consent=row.consent,
    )


def prompt_record(messages: list[Any]) -> Prompt:
    return Prompt(messages=tuple(Message(**m) for m in messages))


def completion_record(row: CompletionRow) -> Completion:
    return Completion(
        text=row.text,
        model_id=row.model_id,
        model_version=row.model_version,
        generation=dict(row.generation),
    )
