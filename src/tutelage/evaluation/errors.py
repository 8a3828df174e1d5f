"""The error an evaluation raises for bad input: it names the file, line, field or URL."""

from __future__ import annotations

__all__ = ["EvaluationError"]


class EvaluationError(ValueError):
    """Input an evaluation cannot use (an empty data set, a bad suite line, a model folder
    of the wrong kind, an unreachable judge); nothing is recorded."""
