"""Typed records that pass between the stages of tutelage.

Every stage (workspace, quality, governance, training, evaluation, registry) speaks
in these records; none of them knows about database tables or HTTP. The store maps
them to rows, the formats map them to files.

Records are immutable pydantic models: construction validates, and a validation
error names the field that is wrong.
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from tutelage.storable import Storable

__all__ = [
    "ChatExample",
    "Comparison",
    "ComparisonOutcome",
    "Completion",
    "Expert",
    "Flag",
    "FlagKind",
    "Judgment",
    "Message",
    "PreferencePair",
    "Project",
    "Prompt",
    "Provenance",
    "Ranking",
    "Rating",
    "Rewrite",
    "Role",
    "RubricCriterion",
    "Strength",
    "TaskKind",
    "content_hash",
    "refuse_control_characters",
]

Role = Literal["system", "user", "assistant"]
NonEmpty = Annotated[str, Field(min_length=1)]


def refuse_control_characters(value: str, what: str) -> str:
    """`value`, if it holds no control or format character (NUL, escapes, bidi marks):
    names and identifiers are shown, exported and compared, where such characters break
    files, terminals and databases (PostgreSQL refuses NUL)."""
    bad = sorted({f"U+{ord(c):04X}" for c in value if unicodedata.category(c)[0] == "C"})
    if bad:
        raise ValueError(f"{what} must not contain control characters ({', '.join(bad)})")
    return value


class _Record(Storable):
    model_config = ConfigDict(frozen=True, extra="forbid")


def content_hash(value: Any) -> str:
    """Return the SHA-256 hex digest of `value` serialised as canonical JSON."""
    blob = json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class Message(_Record):
    """One turn of a conversation."""

    role: Role
    content: str


class RubricCriterion(_Record):
    """A named criterion experts score on an integer scale from `scale_min` to `scale_max`."""

    name: NonEmpty
    description: str = ""
    scale_min: int = 1
    scale_max: int = 5

    @model_validator(mode="after")
    def _scale_is_ordered(self) -> RubricCriterion:
        if self.scale_min >= self.scale_max:
            raise ValueError(
                f"criterion {self.name!r}: scale_min ({self.scale_min}) must be below "
                f"scale_max ({self.scale_max})"
            )
        return self


class TaskKind(StrEnum):
    """What an expert is asked to do with an item."""

    COMPARISON = "comparison"
    RANKING = "ranking"
    RATING = "rating"
    REWRITE = "rewrite"
    FLAG = "flag"
    REDTEAM = "redteam"


class Project(_Record):
    """A body of expert work: one domain, one rubric, one pay rate, one NDA.

    `overlap` is how many distinct experts judge each item. `qualification_pass_mark`
    (a fraction of qualification items answered right) is None when the project needs
    no qualification. `gold_rate` is the share of served items that are gold checks.
    `consensus_method` makes each item's final label ("majority" or "dawid_skene"; a
    reviewer's adjudication overrides either), and items whose consensus confidence is
    below `adjudication_threshold` go to the reviewers' adjudication queue.
    """

    name: Annotated[str, Field(min_length=1, max_length=200)]
    domain: str = Field(default="general", max_length=200)
    instructions: str = ""
    rubric: tuple[RubricCriterion, ...] = ()
    task_kinds: tuple[TaskKind, ...] = (TaskKind.COMPARISON,)
    overlap: int = Field(default=3, ge=1, le=50)
    required_expertise: frozenset[str] = frozenset()
    rationale_required: bool = False
    qualification_pass_mark: float | None = Field(default=None, ge=0, le=1)
    gold_rate: float = Field(default=0.0, ge=0, lt=1)
    lease_seconds: int = Field(default=900, ge=30)
    consensus_method: Literal["majority", "dawid_skene"] = "dawid_skene"
    adjudication_threshold: float = Field(default=0.7, ge=0, le=1)
    pay_rate_per_hour: Decimal = Field(default=Decimal("0"), ge=0, max_digits=10, decimal_places=2)
    currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")
    nda_text: str = ""
    licence: str = Field(default="unspecified", max_length=200)
    consent: str = ""

    @field_validator("name")
    @classmethod
    def _name_is_a_slug(cls, value: str) -> str:
        if value != value.strip() or "/" in value:
            raise ValueError("project name must not contain '/' or surrounding spaces")
        return refuse_control_characters(value, "project name")

    @field_validator("domain", "licence", "currency")
    @classmethod
    def _printable(cls, value: str) -> str:
        return refuse_control_characters(value, "this field")

    @model_validator(mode="after")
    def _criteria_are_unique(self) -> Project:
        names = [c.name for c in self.rubric]
        if len(names) != len(set(names)):
            raise ValueError(f"rubric criteria must have distinct names, got {names}")
        return self


class Expert(_Record):
    """A person who judges model outputs, routed to work by expertise tags."""

    handle: NonEmpty
    display_name: str = ""
    expertise: frozenset[str] = frozenset()


class Prompt(_Record):
    """What the model was asked: one or more messages, normally ending with a user turn."""

    messages: tuple[Message, ...] = Field(min_length=1)

    @property
    def is_multi_turn(self) -> bool:
        return sum(1 for m in self.messages if m.role == "user") > 1

    def key(self) -> str:
        """Return the content hash that identifies this prompt within a project."""
        return content_hash([m.model_dump() for m in self.messages])


class Completion(_Record):
    """One answer to a prompt, with what produced it."""

    text: str
    model_id: str = "unknown"
    model_version: str = ""
    generation: dict[str, Any] = Field(default_factory=dict)

    def key(self) -> str:
        """Return the content hash that identifies this completion under its prompt."""
        return content_hash([self.text, self.model_id, self.model_version])


class Provenance(_Record):
    """Who made a judgment, when, with how much active time, having seen what.

    Exactly one of `expert` (a person in the workspace) and `source` (a named external
    dataset such as ``hh-rlhf``) is set. `shown` records what the judge saw, e.g. which
    completion was displayed as A after blinding.
    """

    expert: str | None = None
    source: str | None = None
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    active_seconds: float = Field(default=0.0, ge=0)
    shown: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_author(self) -> Provenance:
        if (self.expert is None) == (self.source is None):
            raise ValueError("provenance needs exactly one of 'expert' or 'source'")
        return self


class ComparisonOutcome(StrEnum):
    A = "a"
    B = "b"
    TIE = "tie"
    BOTH_BAD = "both_bad"


class Strength(StrEnum):
    SLIGHT = "slight"
    CLEAR = "clear"
    DECISIVE = "decisive"


class FlagKind(StrEnum):
    HALLUCINATION = "hallucination"
    UNSAFE = "unsafe"
    OUTDATED = "outdated"
    OTHER = "other"


class Comparison(_Record):
    """A pairwise judgment between completions `a` and `b` of one prompt."""

    kind: Literal["comparison"] = "comparison"
    a: str  # completion key
    b: str
    outcome: ComparisonOutcome
    strength: Strength | None = None
    criteria: dict[str, int] = Field(default_factory=dict)
    rationale: str = ""
    provenance: Provenance


class Ranking(_Record):
    """An order of N completions of one prompt, best first."""

    kind: Literal["ranking"] = "ranking"
    order: tuple[str, ...] = Field(min_length=2)
    rationale: str = ""
    provenance: Provenance

    @field_validator("order")
    @classmethod
    def _distinct(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(value)) != len(value):
            raise ValueError("a ranking lists each completion once")
        return value


class Rating(_Record):
    """Scores of one completion against the project's rubric criteria."""

    kind: Literal["rating"] = "rating"
    completion: str
    scores: dict[str, int] = Field(min_length=1)
    rationale: str = ""
    provenance: Provenance


class Rewrite(_Record):
    """An improved answer written by an expert from an existing completion."""

    kind: Literal["rewrite"] = "rewrite"
    completion: str
    text: NonEmpty
    provenance: Provenance


class Flag(_Record):
    """A marked span ``text[start:end]`` of a completion, e.g. a hallucination."""

    kind: Literal["flag"] = "flag"
    completion: str
    start: int = Field(ge=0)
    end: int = Field(ge=0)
    flag: FlagKind
    note: str = ""
    provenance: Provenance

    @model_validator(mode="after")
    def _span_is_ordered(self) -> Flag:
        if self.end <= self.start:
            raise ValueError(f"flag span must have end > start, got [{self.start}, {self.end})")
        return self


Judgment = Annotated[Comparison | Ranking | Rating | Rewrite | Flag, Field(discriminator="kind")]


class PreferencePair(_Record):
    """A prompt with a chosen and a rejected completion: the unit of preference files.

    On import it becomes a Prompt, two Completions and a Comparison whose `a` is the
    chosen completion and whose outcome is A.
    """

    prompt: Prompt
    chosen: Completion
    rejected: Completion
    strength: Strength | None = None


class ChatExample(_Record):
    """A chat prompt, optionally with the answer that followed it (a demonstration)."""

    prompt: Prompt
    answer: Completion | None = None
