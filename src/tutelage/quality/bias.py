"""Bias by expert group, and drift of one expert over time.

Groups of experts (by expertise tag) may prefer systematically different answers: the
longer one, the more hedged one, one model's. For each group and each such feature the
share of its decisive choices that went the feature's way is set against the other
experts' share, with Fisher's exact test (scipy) and Cohen's h as the effect size
(statsmodels). An expert drifts when their agreement with the consensus in the second
half of their judgments (in the order they were made) falls from the first half by a
margin Fisher's test finds unlikely by chance; the rolling agreement shows the path.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

__all__ = ["ExpertDrift", "GroupBias", "expert_drift", "group_bias", "hedges"]

HEDGES = re.compile(
    r"\b(may|might|perhaps|possibly|probably|it depends|not sure|i think|"
    r"consult|generally|usually|could be|likely)\b",
    re.IGNORECASE,
)
MIN_CHOICES = 5  # below this many decisive choices a group's share is not tested
WINDOW = 20


def hedges(text: str) -> int:
    """Return how many hedging phrases ("may", "it depends", "consult", ...) `text` has."""
    return len(HEDGES.findall(text))


@dataclass(frozen=True)
class GroupBias:
    """Of a group's decisive choices where the feature told the answers apart, the share
    that went its way (`share`), against the other experts' (`others`)."""

    group: str
    feature: str
    choices: int
    share: float
    others_choices: int
    others: float
    effect_h: float
    p_value: float


@dataclass(frozen=True)
class ExpertDrift:
    """One expert's agreement with the consensus, first half against second half."""

    worker: str
    judgments: int
    first_half: float
    second_half: float
    p_value: float
    rolling: tuple[float, ...]

    @property
    def drifting(self) -> bool:
        return self.p_value < 0.05 and self.first_half - self.second_half >= 0.2


def _choices(comparisons: pd.DataFrame) -> pd.DataFrame:
    decisive = comparisons[comparisons["label"].isin(["a", "b"])]
    chose_first = decisive["label"] == "a"
    return pd.DataFrame(
        {
            "worker": decisive["worker"].to_numpy(),
            "chosen": decisive["first"].where(chose_first, decisive["second"]).to_numpy(),
            "other": decisive["second"].where(chose_first, decisive["first"]).to_numpy(),
        }
    )


def _features(
    choices: pd.DataFrame, texts: Mapping[int, str], models: Mapping[int, str]
) -> dict[str, pd.Series]:
    """Per feature, 1/0 for each choice it tells apart (the others left out as NaN)."""
    chosen_len = choices["chosen"].map(lambda c: len(texts.get(int(c), "")))
    other_len = choices["other"].map(lambda c: len(texts.get(int(c), "")))
    found = {"longer answer": (chosen_len > other_len).astype(float).where(chosen_len != other_len)}
    chosen_hedges = choices["chosen"].map(lambda c: hedges(texts.get(int(c), "")))
    other_hedges = choices["other"].map(lambda c: hedges(texts.get(int(c), "")))
    found["more hedged answer"] = (
        (chosen_hedges > other_hedges).astype(float).where(chosen_hedges != other_hedges)
    )
    chosen_model = choices["chosen"].map(lambda c: models.get(int(c), ""))
    other_model = choices["other"].map(lambda c: models.get(int(c), ""))
    for model in sorted(set(chosen_model) | set(other_model)):
        if not model or model == "unknown":
            continue
        against = (chosen_model == model) != (other_model == model)
        found[f"answer by {model}"] = (chosen_model == model).astype(float).where(against)
    return found


def group_bias(
    comparisons: pd.DataFrame,
    *,
    texts: Mapping[int, str],
    models: Mapping[int, str],
    groups: Mapping[str, Sequence[str]],
) -> list[GroupBias]:
    """Return, for each group (worker -> its tags in `groups`) and feature, the group's
    share against the other experts'. Workers without a tag form no group."""
    from scipy.stats import fisher_exact
    from statsmodels.stats.proportion import proportion_effectsize

    choices = _choices(comparisons)
    if choices.empty:
        return []
    features = _features(choices, texts, models)
    tags = sorted({t for worker_tags in groups.values() for t in worker_tags})
    found = []
    for tag in tags:
        inside = choices["worker"].map(lambda w, tag=tag: tag in groups.get(str(w), ()))
        for feature, went in features.items():
            ours, theirs = went[inside].dropna(), went[~inside].dropna()
            if len(ours) < MIN_CHOICES or len(theirs) < MIN_CHOICES:
                continue
            share, others = float(ours.mean()), float(theirs.mean())
            table = [
                [int(ours.sum()), len(ours) - int(ours.sum())],
                [int(theirs.sum()), len(theirs) - int(theirs.sum())],
            ]
            found.append(
                GroupBias(
                    group=tag,
                    feature=feature,
                    choices=len(ours),
                    share=share,
                    others_choices=len(theirs),
                    others=others,
                    effect_h=float(proportion_effectsize(share, others)),
                    p_value=float(fisher_exact(table).pvalue),
                )
            )
    return found


def expert_drift(
    comparisons: pd.DataFrame, consensus: Mapping[int, str], *, window: int = WINDOW
) -> list[ExpertDrift]:
    """Return each expert's drift: their decisive judgments in `judgment_id` order (the
    order they were stored), each 1 when it matches the item's consensus label."""
    from scipy.stats import fisher_exact

    found: list[ExpertDrift] = []
    if comparisons.empty:
        return found
    judged = comparisons[comparisons["item"].isin(list(consensus))]
    for worker, rows in judged.sort_values("judgment_id").groupby("worker", sort=True):
        agreed = [
            int(label == consensus[int(item)])
            for item, label in zip(rows["item"], rows["label"], strict=True)
        ]
        if len(agreed) < 2 * window:
            continue
        half = len(agreed) // 2
        first, second = agreed[:half], agreed[half:]
        table = [[sum(first), len(first) - sum(first)], [sum(second), len(second) - sum(second)]]
        rolling = pd.Series(agreed).rolling(window).mean().dropna()
        found.append(
            ExpertDrift(
                worker=str(worker),
                judgments=len(agreed),
                first_half=sum(first) / len(first),
                second_half=sum(second) / len(second),
                p_value=float(fisher_exact(table).pvalue),
                rolling=tuple(float(v) for v in rolling),
            )
        )
    return found
