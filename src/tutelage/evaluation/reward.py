"""Audit a reward model on preference pairs: accuracy with its interval, calibration,
length bias, robustness to perturbations, ensemble spread, and accuracy by group.

`audit_scores` works on rewards already computed (pure, tested by hand); `audit_reward`
loads the model once and audits each data set given.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from tutelage.evaluation.calibration import Calibration, measure_calibration
from tutelage.evaluation.data import PairSet
from tutelage.evaluation.errors import EvaluationError, first_line
from tutelage.evaluation.intervals import bootstrap_mean_interval, spread_auroc
from tutelage.evaluation.length import LengthBias, credit, length_bias
from tutelage.evaluation.robustness import Flips, TextScorer, flip_rates
from tutelage.evaluation.temperature import (
    TemperatureFit,
    fit_on_split,
    save_temperature,
    saved_temperature,
)
from tutelage.training.data import TrainingPair
from tutelage.training.evaluate import RewardEvaluation, evaluate_scores

# Correct verdicts each perturbation is tried on, at most: 1,000 bound a flip rate to
# about +-3 points, and on a CPU each costs one more answer scored.
ROBUSTNESS_SAMPLE = 1_000

__all__ = ["ROBUSTNESS_SAMPLE", "GroupAccuracy", "RewardAudit", "audit_reward", "audit_scores"]


@dataclass(frozen=True)
class GroupAccuracy:
    group: str
    value: str
    n: int
    accuracy: float


@dataclass(frozen=True)
class RewardAudit:
    """Everything measured of a reward model on one data set.

    `calibration` is the raw model's; `calibrated` uses the temperature saved with the
    model (None when it has none). `accuracy_low`/`accuracy_high` bound a bootstrap 95%
    interval (None below two pairs). `spread_auroc`: how well the ensemble members'
    disagreement picks out its mistakes (None for one model or no mistakes).
    """

    source: str
    evaluation: RewardEvaluation
    accuracy_low: float | None
    accuracy_high: float | None
    calibration: Calibration
    calibrated: Calibration | None
    length: LengthBias
    robustness: tuple[Flips, ...]
    members: int
    spread_auroc: float | None
    groups: tuple[GroupAccuracy, ...]
    hash: str | None = None
    temperature_fit: TemperatureFit | None = None

    def summary(self) -> dict[str, Any]:
        """Return the JSON figures: the keys `eval reward --json` always had, then more."""
        e = self.evaluation
        found: dict[str, Any] = {
            "source": self.source,
            "n": e.n,
            "accuracy": e.accuracy,
            "length_baseline_accuracy": e.length_baseline_accuracy,
            "mean_margin": e.mean_margin,
            "ties": e.ties,
            "accuracy_interval": [self.accuracy_low, self.accuracy_high],
            "calibration": self.calibration.summary(),
            "length": self.length.summary(),
            "robustness": {
                f.name: {
                    "flip_rate": f.flip_rate,
                    "interval": list(f.interval() or (None, None)),
                    "flipped": f.flipped,
                    "correct": f.correct,
                    "eligible": f.eligible,
                }
                for f in self.robustness
            },
            "members": self.members,
            "spread_auroc": self.spread_auroc,
            "groups": _group_summary(self.groups),
        }
        if self.calibrated is not None:
            found["calibrated"] = {
                "temperature": self.calibrated.temperature,
                **self.calibrated.summary(),
            }
        if self.hash is not None:
            found["hash"] = self.hash
        if self.temperature_fit is not None:
            found["temperature_fit"] = asdict(self.temperature_fit)
        finite: dict[str, Any] = _finite(found)
        return finite


def _finite(value: Any) -> Any:
    """Return `value` with NaN (a constant's correlation, say) as None, which JSON has."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def _group_summary(groups: Sequence[GroupAccuracy]) -> dict[str, dict[str, dict[str, float]]]:
    found: dict[str, dict[str, dict[str, float]]] = defaultdict(dict)
    for g in groups:
        found[g.group][g.value] = {"n": g.n, "accuracy": g.accuracy}
    return dict(found)


def _by_group(
    groups: Mapping[str, Sequence[Sequence[str]]], credits: Sequence[float]
) -> tuple[GroupAccuracy, ...]:
    found: list[GroupAccuracy] = []
    for group, values in groups.items():
        if len(values) != len(credits):
            raise ValueError(f"group {group!r} has {len(values)} entries for {len(credits)} pairs")
        members: dict[str, list[float]] = defaultdict(list)
        for pair_values, k in zip(values, credits, strict=True):
            for value in pair_values:
                members[value].append(k)
        found.extend(
            GroupAccuracy(group, value, len(ks), sum(ks) / len(ks))
            for value, ks in sorted(members.items())
        )
    return tuple(found)


def audit_scores(
    data: PairSet,
    member_scores: Sequence[Sequence[tuple[float, float]]],
    *,
    score_texts: TextScorer | None = None,
    temperature: float | None = None,
    perturbations: Sequence[str] | None = None,
    robustness_sample: int | None = ROBUSTNESS_SAMPLE,
    seed: int = 0,
) -> RewardAudit:
    """Return the audit of (chosen, rejected) rewards per member of the model, per pair.

    The model's reward is the members' mean. Robustness is measured when `score_texts`
    (which scores (prompt, answer) pairs with the same model) is given.
    """
    if not data.pairs:
        raise ValueError(f"no preference pairs to evaluate on in {data.source}")
    count = len(member_scores)
    if count == 0:
        raise ValueError("no rewards: the model has no members")
    pairs = list(data.pairs)
    scores = [
        (
            sum(m[i][0] for m in member_scores) / count,
            sum(m[i][1] for m in member_scores) / count,
        )
        for i in range(len(pairs))
    ]
    evaluation = evaluate_scores(pairs, scores)
    credits = [credit(c, r) for c, r in scores]
    low, high = bootstrap_mean_interval(credits, seed=seed)
    margins = [c - r for c, r in scores]
    flips: list[Flips] = []
    if score_texts is not None:
        flips = flip_rates(
            [(p.prompt, p.chosen, p.rejected) for p in pairs],
            scores,
            score_texts,
            names=perturbations,
            seed=seed,
            sample=robustness_sample,
        )
    auroc = None
    if count > 1:
        spreads = [_spread([m[i][0] - m[i][1] for m in member_scores]) for i in range(len(pairs))]
        auroc = spread_auroc(spreads, [k < 1.0 for k in credits])
    return RewardAudit(
        source=data.source,
        evaluation=evaluation,
        accuracy_low=low,
        accuracy_high=high,
        calibration=measure_calibration(margins),
        calibrated=measure_calibration(margins, temperature=temperature) if temperature else None,
        length=length_bias([(len(p.chosen), len(p.rejected)) for p in pairs], scores),
        robustness=tuple(flips),
        members=count,
        spread_auroc=auroc,
        groups=_by_group(data.groups, credits),
        hash=data.hash,
    )


def _spread(values: Sequence[float]) -> float:
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def audit_reward(
    model_dir: str | Path,
    data: Sequence[PairSet],
    *,
    robustness: bool = True,
    perturbations: Sequence[str] | None = None,
    robustness_sample: int | None = ROBUSTNESS_SAMPLE,
    max_length: int = 256,
    batch_size: int = 16,
    seed: int = 0,
    fit_temperature: bool = False,
    progress: Callable[[str], None] | None = None,
) -> list[RewardAudit]:
    """Load the reward model (or ensemble) at `model_dir` once and audit each data set.

    With `fit_temperature`, a temperature is fitted on half the prompts of the first
    data set (`fit_on_split`), saved with the model, and used for every data set; the
    first audit carries the fit.
    """
    from tutelage.training.scoring import RewardScorer

    try:
        scorer = RewardScorer(model_dir, max_length=max_length, batch_size=batch_size)
    except (OSError, ValueError, KeyError, TypeError) as error:
        # transformers' own message says what it found; one line, no traceback
        raise EvaluationError(
            f"{model_dir} is not a reward model tutelage can load: {first_line(error)}"
        ) from None
    temperature = saved_temperature(model_dir)
    audits: list[RewardAudit] = []
    fit = None
    for each in data:
        if progress is not None:
            progress(f"scoring {len(each.pairs):,} pairs from {each.source}")
        member_scores = scorer.score_pairs(each.pairs)
        if fit_temperature and fit is None:
            count = len(member_scores)
            margins = [
                sum(m[i][0] - m[i][1] for m in member_scores) / count
                for i in range(len(each.pairs))
            ]
            fit = fit_on_split(each.source, each.pairs, margins, seed=seed)
            save_temperature(model_dir, fit)
            temperature = fit.temperature
        by_prompt = {p.prompt: p for p in each.pairs}

        def score_texts(
            texts: Sequence[tuple[str, str]], by_prompt: dict[str, TrainingPair] = by_prompt
        ) -> list[float]:
            members = scorer.score([(by_prompt[prompt], answer) for prompt, answer in texts])
            return [sum(rewards) / len(rewards) for rewards in zip(*members, strict=True)]

        if progress is not None and robustness:
            progress(f"perturbing the answers of {each.source}")
        audit = audit_scores(
            each,
            member_scores,
            score_texts=score_texts if robustness else None,
            temperature=temperature,
            perturbations=perturbations,
            robustness_sample=robustness_sample,
            seed=seed,
        )
        audits.append(replace(audit, temperature_fit=fit) if not audits and fit else audit)
    return audits
