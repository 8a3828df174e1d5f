"""The entry point: agreement, consensus, reliability and flags for one project's judgments."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import cached_property
from typing import Any

import pandas as pd

from tutelage.quality.agreement import AgreementReport, agreement_report
from tutelage.quality.consensus import (
    LABELS,
    ConsensusLabel,
    adjudicate,
    bradley_terry,
    dawid_skene,
    judgment_ids_by_item,
    majority_vote,
)
from tutelage.quality.detection import ExpertFlag, expert_flags
from tutelage.quality.reliability import ExpertReliability, expert_reliability, worker_evidence

__all__ = ["METHODS", "QualityAnalysis", "analyse"]

METHODS = ("dawid_skene", "majority")
"""Consensus methods `analyse` can make the project's consensus with."""


@dataclass(frozen=True)
class QualityAnalysis:
    """Everything the quality library knows about a project's judgments.

    `consensus` is `method`'s labels with adjudications applied; `majority` and
    `dawid_skene` are each method's own labels. `bradley_terry` maps completion ids to
    strengths (log-odds scale: P(i beats j) = sigmoid(s_i - s_j)).
    """

    agreement: AgreementReport
    consensus: list[ConsensusLabel]
    majority: list[ConsensusLabel]
    dawid_skene: list[ConsensusLabel]
    bradley_terry: dict[int, float]
    experts: list[ExpertReliability]
    flags: list[ExpertFlag]
    method: str

    @cached_property
    def _by_item(self) -> dict[int, ConsensusLabel]:
        return {c.item: c for c in self.consensus}

    def item_confidence(self, item: int) -> float:
        """The consensus confidence of `item` (KeyError when it has no consensus)."""
        return self._by_item[item].confidence

    def low_agreement_items(self, threshold: float) -> list[int]:
        """Items whose consensus confidence is below `threshold` and that nobody adjudicated."""
        return [
            c.item
            for c in self.consensus
            if c.confidence < threshold and c.method != "adjudication"
        ]

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict: lists and dicts of str, int, float and None (never NaN)."""
        matrix = self.agreement.matrix
        return {
            "method": self.method,
            "agreement": {
                "overall": {k: _clean(asdict(v)) for k, v in self.agreement.overall.items()},
                "pairwise": [_clean(asdict(p)) for p in self.agreement.pairwise],
                "matrix": {
                    "workers": [str(w) for w in matrix.index],
                    "values": [[_finite(v) for v in row] for row in matrix.to_numpy().tolist()],
                },
            },
            "consensus": [_label(c) for c in self.consensus],
            "majority": [_label(c) for c in self.majority],
            "dawid_skene": [_label(c) for c in self.dawid_skene],
            "bradley_terry": {str(k): _finite(v) for k, v in self.bradley_terry.items()},
            "experts": [_clean(asdict(e)) for e in self.experts],
            "flags": [asdict(f) for f in self.flags],
        }


def analyse(
    comparisons: pd.DataFrame,
    *,
    scores: pd.DataFrame | None = None,
    criteria_levels: dict[str, str] | None = None,
    rankings: pd.DataFrame | None = None,
    gold: dict[str, tuple[int, int]] | None = None,
    adjudications: dict[int, str] | None = None,
    excluded: frozenset[str] = frozenset(),
    method: str = "dawid_skene",
    bootstrap: int = 1000,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> QualityAnalysis:
    """Analyse one project's judgments.

    `comparisons` has one row per comparison judgment (judgment_id, item, worker, label in
    canonical order, swapped, strength, active_seconds, first, second); `scores` one row
    per rubric score (judgment_id, item, worker, criterion, score); `rankings` one row per
    ranking (judgment_id, item, worker, order). `excluded` workers are left out of
    agreement, consensus and Bradley-Terry but still get a reliability row. Bootstrap
    intervals use at most `bootstrap` resamples (fewer on large projects; each Statistic's
    note says how many).
    """
    if method not in METHODS:
        raise ValueError(f"unknown consensus method {method!r}; use one of {METHODS}")
    unknown = sorted(set(comparisons["label"].unique()) - set(LABELS))
    if unknown:
        raise ValueError(f"comparison labels must be one of {LABELS}, not {unknown}")
    say = progress or (lambda _: None)
    kept = comparisons[~comparisons["worker"].isin(excluded)]
    kept_scores = None if scores is None else scores[~scores["worker"].isin(excluded)]
    kept_rankings = None if rankings is None else rankings[~rankings["worker"].isin(excluded)]

    say("agreement")
    agreement = agreement_report(
        kept, scores=kept_scores, criteria_levels=criteria_levels, bootstrap=bootstrap, seed=seed
    )
    say("consensus: majority vote")
    majority = majority_vote(kept)
    say("consensus: Dawid-Skene")
    model = dawid_skene(kept)
    chosen = model if method == "dawid_skene" else majority
    decided = adjudications or {}
    unlabelled = set(decided) - {c.item for c in chosen.labels}
    consensus = adjudicate(
        chosen.labels,
        decided,
        judgment_ids=judgment_ids_by_item(comparisons[comparisons["item"].isin(unlabelled)]),
    )
    say("Bradley-Terry")
    strengths = bradley_terry(kept, rankings=kept_rankings)
    say("reliability")
    evidence = worker_evidence(comparisons, chosen, excluded=excluded, scores=scores, gold=gold)
    say("detection")
    return QualityAnalysis(
        agreement=agreement,
        consensus=consensus,
        majority=majority.labels,
        dawid_skene=model.labels,
        bradley_terry=strengths,
        experts=[expert_reliability(e) for e in evidence],
        flags=expert_flags(evidence),
        method=method,
    )


def _label(c: ConsensusLabel) -> dict[str, Any]:
    return {
        "item": c.item,
        "label": c.label,
        "confidence": _finite(c.confidence),
        "method": c.method,
        "judgment_ids": list(c.judgment_ids),
    }


def _clean(value: Any) -> Any:
    """`value` with tuples as lists and NaN or infinite floats as None, recursively."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, float):
        return _finite(value)
    return value


def _finite(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)
