"""What an expert sends for each task kind, validated before anything is stored.

Answers are named by the letters the expert saw (A, B, C, …); the judging service maps
them back to completions through the assignment's recorded order.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, ConfigDict, Field

from tutelage.records import ComparisonOutcome, FlagKind, Strength
from tutelage.storable import Storable

__all__ = [
    "ComparisonSubmission",
    "FlagSpan",
    "FlagSubmission",
    "RankingSubmission",
    "RatingSubmission",
    "RedteamSubmission",
    "RewriteSubmission",
    "Submission",
]

Letter = Annotated[str, Field(pattern=r"^[A-Z]$")]


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty or only whitespace")
    return value


Written = Annotated[str, AfterValidator(_not_blank)]  # text an expert wrote: never blank


class _Submission(Storable):
    model_config = ConfigDict(extra="forbid", frozen=True)

    active_seconds: float = Field(default=0.0, ge=0, le=24 * 3600)


class ComparisonSubmission(_Submission):
    kind: Literal["comparison"] = "comparison"
    choice: ComparisonOutcome
    strength: Strength | None = None
    criteria: dict[str, int] = Field(default_factory=dict)
    rationale: str = Field(default="", max_length=20_000)


class RankingSubmission(_Submission):
    kind: Literal["ranking"] = "ranking"
    order: list[Letter] = Field(min_length=2)
    rationale: str = Field(default="", max_length=20_000)


class RatingSubmission(_Submission):
    kind: Literal["rating"] = "rating"
    scores: dict[str, int] = Field(min_length=1)
    rationale: str = Field(default="", max_length=20_000)


class RewriteSubmission(_Submission):
    kind: Literal["rewrite"] = "rewrite"
    base: Letter = "A"
    text: Written = Field(min_length=1, max_length=100_000)


class FlagSpan(Storable):
    model_config = ConfigDict(extra="forbid", frozen=True)

    answer: Letter = "A"
    start: int = Field(ge=0)
    end: int = Field(ge=1)
    flag: FlagKind
    note: str = Field(default="", max_length=5_000)


class FlagSubmission(_Submission):
    """The spans an expert marked; an empty list says the answer has nothing to flag."""

    kind: Literal["flag"] = "flag"
    flags: list[FlagSpan] = Field(default_factory=list, max_length=200)


class RedteamSubmission(_Submission):
    kind: Literal["redteam"] = "redteam"
    prompt: Written = Field(min_length=1, max_length=20_000)
    rationale: str = Field(default="", max_length=20_000)


Submission = Annotated[
    ComparisonSubmission
    | RankingSubmission
    | RatingSubmission
    | RewriteSubmission
    | FlagSubmission
    | RedteamSubmission,
    Field(discriminator="kind"),
]
