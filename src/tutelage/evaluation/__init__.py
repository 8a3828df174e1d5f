"""Evaluation and audit of trained models (issue 18): the stage above training.

Reward models: accuracy with its interval, calibration, length bias, robustness to
perturbations, out-of-distribution data sets side by side, accuracy by group, and a
report. Every evaluation is kept in the store for the stages above to read.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tutelage.evaluation.calibration import (
        Calibration,
        ReliabilityBin,
        fit_temperature,
        measure_calibration,
        preference_probabilities,
    )
    from tutelage.evaluation.choices import ChoiceRequest, ChoiceScorer, open_policy
    from tutelage.evaluation.data import PairSet, load_pair_sets
    from tutelage.evaluation.errors import EvaluationError
    from tutelage.evaluation.length import LengthBias, LengthBucket, length_bias
    from tutelage.evaluation.policy import PolicyAudit, audit_policy
    from tutelage.evaluation.records import list_evaluations, model_fingerprint, record_evaluation
    from tutelage.evaluation.report import reward_report_html, write_reward_report
    from tutelage.evaluation.reward import GroupAccuracy, RewardAudit, audit_reward, audit_scores
    from tutelage.evaluation.robustness import (
        PERTURBATIONS,
        Flips,
        Perturbation,
        flip_rates,
        perturbation,
    )
    from tutelage.evaluation.suites import BUNDLED, Suite, SuiteItem, load_suite, read_suite
    from tutelage.evaluation.sycophancy import FormRate, Outcomes, answer_suites, form_rates
    from tutelage.evaluation.temperature import (
        CALIBRATION_FILE,
        TemperatureFit,
        fit_on_split,
        save_temperature,
        saved_temperature,
    )

# Names load on first use: `tutelage.evaluation.records` (the admin pages read it) must
# not pull torch in through the scoring modules.
_WHERE = {
    "BUNDLED": "tutelage.evaluation.suites",
    "ChoiceRequest": "tutelage.evaluation.choices",
    "ChoiceScorer": "tutelage.evaluation.choices",
    "FormRate": "tutelage.evaluation.sycophancy",
    "Outcomes": "tutelage.evaluation.sycophancy",
    "PolicyAudit": "tutelage.evaluation.policy",
    "Suite": "tutelage.evaluation.suites",
    "SuiteItem": "tutelage.evaluation.suites",
    "answer_suites": "tutelage.evaluation.sycophancy",
    "audit_policy": "tutelage.evaluation.policy",
    "form_rates": "tutelage.evaluation.sycophancy",
    "load_suite": "tutelage.evaluation.suites",
    "open_policy": "tutelage.evaluation.choices",
    "read_suite": "tutelage.evaluation.suites",
    "EvaluationError": "tutelage.evaluation.errors",
    "CALIBRATION_FILE": "tutelage.evaluation.temperature",
    "Calibration": "tutelage.evaluation.calibration",
    "Flips": "tutelage.evaluation.robustness",
    "GroupAccuracy": "tutelage.evaluation.reward",
    "LengthBias": "tutelage.evaluation.length",
    "LengthBucket": "tutelage.evaluation.length",
    "PERTURBATIONS": "tutelage.evaluation.robustness",
    "PairSet": "tutelage.evaluation.data",
    "Perturbation": "tutelage.evaluation.robustness",
    "ReliabilityBin": "tutelage.evaluation.calibration",
    "RewardAudit": "tutelage.evaluation.reward",
    "TemperatureFit": "tutelage.evaluation.temperature",
    "audit_reward": "tutelage.evaluation.reward",
    "audit_scores": "tutelage.evaluation.reward",
    "measure_calibration": "tutelage.evaluation.calibration",
    "fit_on_split": "tutelage.evaluation.temperature",
    "fit_temperature": "tutelage.evaluation.calibration",
    "flip_rates": "tutelage.evaluation.robustness",
    "length_bias": "tutelage.evaluation.length",
    "list_evaluations": "tutelage.evaluation.records",
    "load_pair_sets": "tutelage.evaluation.data",
    "model_fingerprint": "tutelage.evaluation.records",
    "perturbation": "tutelage.evaluation.robustness",
    "preference_probabilities": "tutelage.evaluation.calibration",
    "record_evaluation": "tutelage.evaluation.records",
    "reward_report_html": "tutelage.evaluation.report",
    "save_temperature": "tutelage.evaluation.temperature",
    "saved_temperature": "tutelage.evaluation.temperature",
    "write_reward_report": "tutelage.evaluation.report",
}

__all__ = [
    "BUNDLED",
    "CALIBRATION_FILE",
    "PERTURBATIONS",
    "Calibration",
    "ChoiceRequest",
    "ChoiceScorer",
    "EvaluationError",
    "Flips",
    "FormRate",
    "GroupAccuracy",
    "LengthBias",
    "LengthBucket",
    "Outcomes",
    "PairSet",
    "Perturbation",
    "PolicyAudit",
    "ReliabilityBin",
    "RewardAudit",
    "Suite",
    "SuiteItem",
    "TemperatureFit",
    "answer_suites",
    "audit_policy",
    "audit_reward",
    "audit_scores",
    "fit_on_split",
    "fit_temperature",
    "flip_rates",
    "form_rates",
    "length_bias",
    "list_evaluations",
    "load_pair_sets",
    "load_suite",
    "measure_calibration",
    "model_fingerprint",
    "open_policy",
    "perturbation",
    "preference_probabilities",
    "read_suite",
    "record_evaluation",
    "reward_report_html",
    "save_temperature",
    "saved_temperature",
    "write_reward_report",
]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_WHERE[name]), name)
