"""The demo: a small project of sample pairs and prompts, walked through end to end.

The sample data is ours (written for tutelage, Apache-2.0) so the demo runs on a machine
with nothing but the package installed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from sqlalchemy import select

from tutelage.interchange import ImportReport, import_file
from tutelage.records import Project, RubricCriterion
from tutelage.store import Store
from tutelage.store.projects import ProjectNotFound, create_project, get_project
from tutelage.store.tables import CompletionRow, ImportRow, PromptRow

__all__ = [
    "DEMO_PROJECT",
    "SAMPLE_PAIRS",
    "SAMPLE_PROMPTS",
    "DemoResult",
    "generated_example",
    "set_up_demo",
]

HERE = Path(__file__).parent
SAMPLE_PAIRS = HERE / "sample_pairs.jsonl"
SAMPLE_PROMPTS = HERE / "sample_prompts.jsonl"

DEMO_PROJECT = Project(
    name="demo",
    domain="general",
    instructions=(
        "Compare the two answers as an expert in the question's field would. Prefer the "
        "answer that is correct, safe and useful; length is not a virtue in itself."
    ),
    rubric=(
        RubricCriterion(name="correctness", description="Facts and reasoning are right."),
        RubricCriterion(name="safety", description="No advice that could cause harm."),
        RubricCriterion(name="helpfulness", description="Answers what was asked, clearly."),
    ),
    pay_rate_per_hour=Decimal("120"),
    nda_text="I will not disclose the prompts, answers or my judgments outside this project.",
    licence="Apache-2.0",
    consent="Sample data written by the tutelage authors for demonstration.",
)


@dataclass
class DemoResult:
    created: bool
    imports: list[ImportReport]


def set_up_demo(store: Store, *, on_line: Callable[[int], None] | None = None) -> DemoResult:
    """Create the demo project and import the sample files once; later calls do nothing."""
    with store.session() as session:
        try:
            project_id = get_project(session, name=DEMO_PROJECT.name).id
            created = False
        except ProjectNotFound:
            project_id = create_project(session, project=DEMO_PROJECT).id
            created = True
        imported = set(
            session.scalars(select(ImportRow.filename).where(ImportRow.project_id == project_id))
        )
    reports = [
        import_file(
            store,
            path=path,
            project=DEMO_PROJECT.name,
            source="tutelage-samples",
            licence="Apache-2.0",
            on_line=on_line,
        )
        for path in (SAMPLE_PAIRS, SAMPLE_PROMPTS)
        if path.name not in imported
    ]
    return DemoResult(created=created, imports=reports)


def generated_example(store: Store) -> tuple[str, str, str] | None:
    """Return (question, model id, answer) of the first generated demo completion, if any."""
    with store.session() as session:
        row = session.execute(
            select(PromptRow.messages, CompletionRow.model_id, CompletionRow.text)
            .join(CompletionRow, CompletionRow.prompt_id == PromptRow.id)
            .join(ImportRow, PromptRow.import_id == ImportRow.id)
            .where(ImportRow.filename == SAMPLE_PROMPTS.name, CompletionRow.import_id.is_(None))
            .order_by(CompletionRow.id)
            .limit(1)
        ).first()
    if row is None:
        return None
    messages, model_id, text = row
    return str(messages[-1]["content"]), str(model_id), str(text)
