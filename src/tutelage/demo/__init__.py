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
from tutelage.store.tables import ImportRow

__all__ = ["DEMO_PROJECT", "SAMPLE_PAIRS", "SAMPLE_PROMPTS", "DemoResult", "set_up_demo"]

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
