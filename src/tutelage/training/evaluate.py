"""Evaluate a reward model on preference pairs, beside the "longer answer wins" baseline.

`evaluate_scores` is pure arithmetic on rewards already computed; `evaluate_reward` scores
the pairs with a trained model first. A reward model that does not beat the length
baseline has learned little more than "prefer longer answers".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tutelage.training.data import TrainingPair

__all__ = ["RewardEvaluation", "evaluate_reward", "evaluate_scores"]


@dataclass(frozen=True)
class RewardEvaluation:
    """Pairwise accuracy of a reward model and of the length baseline on the same pairs.

    Accuracies are fractions in [0, 1] with ties counted half; `mean_margin` is the mean
    of (chosen reward - rejected reward); `ties` counts pairs whose two rewards are equal.
    """

    n: int
    accuracy: float
    length_baseline_accuracy: float
    mean_margin: float
    ties: int

    @property
    def beats_length_baseline(self) -> bool:
        return self.accuracy > self.length_baseline_accuracy


def _credit(first: float, second: float) -> float:
    """Return 1 if `first` wins, 0.5 on a tie, 0 if it loses."""
    if first > second:
        return 1.0
    return 0.5 if first == second else 0.0


def evaluate_scores(
    pairs: Sequence[TrainingPair], scores: Sequence[tuple[float, float]]
) -> RewardEvaluation:
    """Return the evaluation of (chosen reward, rejected reward) `scores`, one per pair.

    The length baseline prefers the answer with more characters, equal lengths half.
    """
    if not pairs:
        raise ValueError("no preference pairs to evaluate on")
    if len(scores) != len(pairs):
        raise ValueError(f"{len(scores)} scores for {len(pairs)} pairs")
    n = len(pairs)
    accuracy = sum(_credit(chosen, rejected) for chosen, rejected in scores) / n
    baseline = sum(_credit(len(p.chosen), len(p.rejected)) for p in pairs) / n
    margin = sum(chosen - rejected for chosen, rejected in scores) / n
    ties = sum(chosen == rejected for chosen, rejected in scores)
    return RewardEvaluation(
        n=n, accuracy=accuracy, length_baseline_accuracy=baseline, mean_margin=margin, ties=ties
    )


def evaluate_reward(
    model_dir: str | Path,
    pairs: Sequence[TrainingPair],
    *,
    max_length: int = 256,
    batch_size: int = 32,
) -> RewardEvaluation:
    """Score `pairs` with the reward model at `model_dir` and return its evaluation."""
    from tutelage.training.reward import score_pairs

    if not pairs:
        raise ValueError("no preference pairs to evaluate on")
    scores = score_pairs(model_dir, list(pairs), max_length=max_length, batch_size=batch_size)
    return evaluate_scores(pairs, scores)
