"""The error an evaluation raises for bad input: it names the file, line, field or URL."""

from __future__ import annotations

__all__ = ["EvaluationError", "first_line"]


class EvaluationError(ValueError):
    """Input an evaluation cannot use (an empty data set, a bad suite line, a model folder
    of the wrong kind, an unreachable judge); nothing is recorded."""


def first_line(error: BaseException) -> str:
    """Return the first line of `error`'s message (its type's name when it has none):
    transformers' load errors run to many lines, and the command prints one."""
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__
