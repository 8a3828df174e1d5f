"""The admin's project form: every setting of a Project, parsed with errors per field.

The rubric is typed one criterion a line (`name | description | min | max`), and a
refused line is named, so an admin fixes it without guessing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from tutelage.records import Project, RubricCriterion

__all__ = [
    "ProjectForm",
    "RubricError",
    "field_errors",
    "messages",
    "parse_rubric",
    "rubric_text",
    "words",
]


class RubricError(ValueError):
    """A rubric line that cannot be read; the message names the line."""


# --- Reading forms --------------------------------------------------------------------


def parse_rubric(text: str) -> tuple[RubricCriterion, ...]:
    """Read one criterion a line, ``name | description | min | max`` (min and max optional).

    Blank lines and lines starting with ``#`` are ignored; a bad line raises RubricError
    naming it (counted in the text as typed, blank lines included).
    """
    criteria: list[RubricCriterion] = []
    seen: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = line.split("|")
        if len(parts) == 3:
            raise RubricError(
                f"line {number}: write name | description | min | max, "
                "or leave out both min and max"
            )
        name, _, description = (line if len(parts) < 4 else line.rsplit("|", 2)[0]).partition("|")
        name, description = name.strip(), description.strip()
        fields: dict[str, Any] = {"name": name, "description": description}
        if len(parts) >= 4:
            low, high = (part.strip() for part in parts[-2:])
            try:
                fields["scale_min"], fields["scale_max"] = int(low), int(high)
            except ValueError:
                raise RubricError(
                    f"line {number}: min and max must be whole numbers, got {low!r} and {high!r}"
                ) from None
        if not name:
            raise RubricError(f"line {number}: the criterion needs a name before the first |")
        if name in seen:
            raise RubricError(f"line {number}: {name!r} is named on line {seen[name]} already")
        try:
            criteria.append(RubricCriterion(**fields))
        except ValidationError as exc:
            raise RubricError(f"line {number}: {messages(exc)}") from None
        seen[name] = number
    return tuple(criteria)


def rubric_text(rubric: Iterable[RubricCriterion]) -> str:
    return "\n".join(f"{c.name} | {c.description} | {c.scale_min} | {c.scale_max}" for c in rubric)


def words(text: str) -> frozenset[str]:
    """Read a comma-separated list of tags."""
    return frozenset(word.strip() for word in text.split(",") if word.strip())


def _message(error: Any) -> str:
    return str(error.get("msg", "invalid")).removeprefix("Value error, ")


def messages(exc: ValidationError) -> str:
    return "; ".join(_message(error) for error in exc.errors())


def field_errors(exc: ValidationError) -> dict[str, str]:
    """Map each failing field of a record to its message; "" holds the record's own."""
    found: dict[str, str] = {}
    for error in exc.errors():
        location = error.get("loc") or ("",)
        found.setdefault(str(location[0]), _message(error))
    return found


class ProjectForm(BaseModel):
    """The project form as typed: text, so that a wrong value is shown next to its field."""

    name: str = Field(default="", max_length=1024)
    domain: str = Field(default="", max_length=1024)
    instructions: str = Field(default="", max_length=200_000)
    rubric: str = Field(default="", max_length=200_000)
    task_kinds: list[str] = Field(default_factory=list)
    overlap: str = Field(default="", max_length=100)
    required_expertise: str = Field(default="", max_length=10_000)
    rationale_required: bool = False
    qualification_pass_mark: str = Field(default="", max_length=100)
    gold_rate: str = Field(default="", max_length=100)
    lease_seconds: str = Field(default="", max_length=100)
    pay_rate_per_hour: str = Field(default="", max_length=100)
    currency: str = Field(default="", max_length=100)
    nda_text: str = Field(default="", max_length=200_000)
    licence: str = Field(default="", max_length=1024)
    consent: str = Field(default="", max_length=200_000)
    # A form from before these settings existed leaves them at the record's defaults.
    consensus_method: str = Field(
        default=Project.model_fields["consensus_method"].default, max_length=100
    )
    adjudication_threshold: str = Field(
        default=str(Project.model_fields["adjudication_threshold"].default), max_length=100
    )

    @classmethod
    def of(cls, project: Project) -> ProjectForm:
        mark = project.qualification_pass_mark
        return cls(
            name=project.name,
            domain=project.domain,
            instructions=project.instructions,
            rubric=rubric_text(project.rubric),
            task_kinds=[kind.value for kind in project.task_kinds],
            overlap=str(project.overlap),
            required_expertise=", ".join(sorted(project.required_expertise)),
            rationale_required=project.rationale_required,
            qualification_pass_mark="" if mark is None else str(mark),
            gold_rate=str(project.gold_rate),
            lease_seconds=str(project.lease_seconds),
            pay_rate_per_hour=str(project.pay_rate_per_hour),
            currency=project.currency,
            nda_text=project.nda_text,
            licence=project.licence,
            consent=project.consent,
            consensus_method=project.consensus_method,
            adjudication_threshold=str(project.adjudication_threshold),
        )

    def project(self) -> tuple[Project | None, dict[str, str]]:
        """Return the project the form describes, or None and the errors by field."""
        errors: dict[str, str] = {}
        rubric: tuple[RubricCriterion, ...] = ()
        try:
            rubric = parse_rubric(self.rubric)
        except RubricError as exc:
            errors["rubric"] = str(exc)
        if not self.task_kinds:
            errors["task_kinds"] = "tick at least one task kind"
        # The projects table's limits, which the record does not state (PostgreSQL enforces them).
        for field in ("name", "domain", "licence"):
            if len(getattr(self, field).strip()) > 200:
                errors[field] = "at most 200 characters"
        if not re.fullmatch(r"[A-Za-z]{3}", self.currency.strip()):
            errors["currency"] = "three letters, such as USD or EUR"
        try:
            project = Project.model_validate(
                {
                    **self.model_dump(),
                    "name": self.name.strip(),
                    "domain": self.domain.strip(),
                    "rubric": rubric,
                    "required_expertise": words(self.required_expertise),
                    "qualification_pass_mark": self.qualification_pass_mark.strip() or None,
                    "currency": self.currency.strip().upper(),
                    "licence": self.licence.strip(),
                }
            )
        except ValidationError as exc:
            return None, {**field_errors(exc), **errors}
        return (None, errors) if errors else (project, {})
