"""Length bias of a reward model: does it reward content, or characters?

Lengths are in characters of the answer. A model that learned "longer is better" is
right where the chosen answer is the longer one and wrong where people preferred the
shorter one; accuracy on the chosen-shorter pairs, and within buckets of length
difference, shows it where overall accuracy hides it.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["BUCKETS", "LengthBias", "LengthBucket", "credit", "length_bias"]

# Edges of (len(chosen) - len(rejected)) in characters: 7 buckets from "chosen much
# shorter" to "chosen much longer".
BUCKETS = (-500, -100, 0, 1, 100, 500)


@dataclass(frozen=True)
class LengthBucket:
    """Pairs whose length difference (chosen - rejected) lies in [low, high)."""

    low: float
    high: float
    count: int
    accuracy: float


@dataclass(frozen=True)
class LengthBias:
    """Spearman correlation of reward with answer length (over every answer scored),
    accuracy where the chosen answer is shorter (None: no such pair), and buckets.

    `length_controlled_accuracy` is the mean of the bucket accuracies over non-empty
    buckets: a model cannot raise it by winning only the many pairs where longer won.
    """

    reward_length_spearman: float
    accuracy_chosen_shorter: float | None
    chosen_shorter: int
    length_controlled_accuracy: float
    buckets: tuple[LengthBucket, ...]

    def summary(self) -> dict[str, float | None]:
        return {
            "reward_length_spearman": self.reward_length_spearman,
            "accuracy_chosen_shorter": self.accuracy_chosen_shorter,
            "length_controlled_accuracy": self.length_controlled_accuracy,
        }


def credit(chosen: float, rejected: float) -> float:
    """Return 1 if the chosen reward is higher, 0.5 on a tie, 0 if lower."""
    if chosen > rejected:
        return 1.0
    return 0.5 if chosen == rejected else 0.0


def length_bias(
    lengths: Sequence[tuple[int, int]], scores: Sequence[tuple[float, float]]
) -> LengthBias:
    """Return the length bias of (chosen reward, rejected reward) `scores` on pairs of
    (chosen length, rejected length)."""
    from scipy.stats import spearmanr

    if not scores:
        raise ValueError("no pairs to measure length bias on")
    credits = [credit(c, r) for c, r in scores]
    answer_lengths = [n for pair in lengths for n in pair]
    rewards = [s for pair in scores for s in pair]
    if len(set(answer_lengths)) < 2 or len(set(rewards)) < 2:
        rho = math.nan  # a constant has no rank correlation
    else:
        rho = float(spearmanr(answer_lengths, rewards).statistic)
    shorter = [k for k, (c, r) in zip(credits, lengths, strict=True) if c < r]
    edges = (-math.inf, *BUCKETS, math.inf)
    buckets = []
    for low, high in itertools.pairwise(edges):
        inside = [k for k, (c, r) in zip(credits, lengths, strict=True) if low <= c - r < high]
        accuracy = sum(inside) / len(inside) if inside else math.nan
        buckets.append(LengthBucket(low, high, len(inside), accuracy))
    filled = [b.accuracy for b in buckets if b.count]
    return LengthBias(
        reward_length_spearman=rho,
        accuracy_chosen_shorter=sum(shorter) / len(shorter) if shorter else None,
        chosen_shorter=len(shorter),
        length_controlled_accuracy=sum(filled) / len(filled),
        buckets=tuple(buckets),
    )
