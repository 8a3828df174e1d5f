"""Calibration of a reward model's preference probabilities against what people chose.

A pair's Bradley-Terry probability that the chosen answer wins is
``sigmoid((r_chosen - r_rejected) / T)``. Each pair is counted in both orders (the chosen
answer first, outcome 1, probability p; the rejected answer first, outcome 0, 1 - p):
with only the order people chose, every outcome would be 1 and a model that always says
"certain" would look perfect.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "Calibration",
    "ReliabilityBin",
    "fit_temperature",
    "measure_calibration",
    "preference_probabilities",
]

BINS = 10


@dataclass(frozen=True)
class ReliabilityBin:
    """One bin of the reliability diagram: probabilities in [low, high)."""

    low: float
    high: float
    count: int
    mean_probability: float
    observed: float


@dataclass(frozen=True)
class Calibration:
    """Expected calibration error (equal-width and equal-mass bins), Brier score, bins.

    Counted over both orders of every pair, so `count` is twice the pairs; `temperature`
    is the one the margins were divided by (1.0: uncalibrated).
    """

    count: int
    ece: float
    ece_equal_mass: float
    brier: float
    temperature: float
    bins: tuple[ReliabilityBin, ...]

    def summary(self) -> dict[str, float]:
        return {"ece": self.ece, "ece_equal_mass": self.ece_equal_mass, "brier": self.brier}


def _sigmoid(value: float) -> float:
    if value >= 0:
        return 1.0 / (1.0 + math.exp(-value))
    exponent = math.exp(value)
    return exponent / (1.0 + exponent)


def preference_probabilities(
    margins: Sequence[float], temperature: float = 1.0
) -> tuple[list[float], list[int]]:
    """Return (probabilities, outcomes) over both orders of each pair's margin."""
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, not {temperature}")
    chosen_first = [_sigmoid(m / temperature) for m in margins]
    return chosen_first + [1.0 - p for p in chosen_first], [1] * len(margins) + [0] * len(margins)


def _equal_mass_ece(probabilities: Sequence[float], outcomes: Sequence[int], bins: int) -> float:
    # torchmetrics and netcal bin by width only; equal-mass bins are a sort and a split.
    order = sorted(range(len(probabilities)), key=lambda i: probabilities[i])
    total = len(order)
    error = 0.0
    for b in range(bins):
        chunk = order[b * total // bins : (b + 1) * total // bins]
        if chunk:
            gap = sum(probabilities[i] - outcomes[i] for i in chunk) / len(chunk)
            error += len(chunk) / total * abs(gap)
    return error


def _reliability(
    probabilities: Sequence[float], outcomes: Sequence[int], bins: int
) -> tuple[ReliabilityBin, ...]:
    found = []
    for b in range(bins):
        low, high = b / bins, (b + 1) / bins
        inside = [
            i
            for i, p in enumerate(probabilities)
            if low <= p < high or (b == bins - 1 and p == 1.0)
        ]
        if inside:
            mean = sum(probabilities[i] for i in inside) / len(inside)
            observed = sum(outcomes[i] for i in inside) / len(inside)
        else:
            mean = observed = math.nan
        found.append(ReliabilityBin(low, high, len(inside), mean, observed))
    return tuple(found)


def measure_calibration(
    margins: Sequence[float], *, temperature: float = 1.0, bins: int = BINS
) -> Calibration:
    """Return the calibration of pairs with these (chosen - rejected) reward margins."""
    import torch
    from sklearn.metrics import brier_score_loss
    from torchmetrics.functional.classification import binary_calibration_error

    if not margins:
        raise ValueError("no pairs to measure calibration on")
    probabilities, outcomes = preference_probabilities(margins, temperature)
    ece = float(
        binary_calibration_error(
            torch.tensor(probabilities, dtype=torch.float64),
            torch.tensor(outcomes),
            n_bins=bins,
            norm="l1",
        )
    )
    return Calibration(
        count=len(probabilities),
        ece=ece,
        ece_equal_mass=_equal_mass_ece(probabilities, outcomes, bins),
        brier=float(brier_score_loss(outcomes, probabilities)),
        temperature=temperature,
        bins=_reliability(probabilities, outcomes, bins),
    )


def fit_temperature(margins: Sequence[float]) -> float:
    """Return the temperature that minimises the log loss of these margins (the chosen
    answer wins each), within [0.05, 100]."""
    from scipy.optimize import minimize_scalar

    if not margins:
        raise ValueError("no pairs to fit a temperature on")

    def log_loss(log_temperature: float) -> float:
        temperature = math.exp(log_temperature)
        # -log sigmoid(x) = log(1 + exp(-x)), computed without overflow
        return sum(
            math.log1p(math.exp(-abs(m / temperature))) + max(-m / temperature, 0.0)
            for m in margins
        )

    found = minimize_scalar(log_loss, bounds=(math.log(0.05), math.log(100.0)), method="bounded")
    return float(math.exp(found.x))
