"""Training from dataset versions: reward models, DPO and SFT (issue 6).

Importing this package imports torch; the CLI imports it only when a command trains.
"""

from __future__ import annotations

from tutelage.training.data import (
    Demonstration,
    DemonstrationData,
    PreferenceData,
    TrainingPair,
    load_demonstrations,
    load_pairs,
    split_by_prompt,
    tokenise_pairs,
)
from tutelage.training.dpo import DPOConfig, train_dpo
from tutelage.training.evaluate import RewardEvaluation, evaluate_reward, evaluate_scores
from tutelage.training.losses import bradley_terry_loss, chosen_nll_loss, dpo_loss, ipo_loss
from tutelage.training.reward import (
    RewardConfig,
    score_ensemble,
    score_pairs,
    train_reward,
)
from tutelage.training.run import TrainingRun
from tutelage.training.sft import SFTConfig, train_sft

__all__ = [
    "DPOConfig",
    "Demonstration",
    "DemonstrationData",
    "PreferenceData",
    "RewardConfig",
    "RewardEvaluation",
    "SFTConfig",
    "TrainingPair",
    "TrainingRun",
    "bradley_terry_loss",
    "chosen_nll_loss",
    "dpo_loss",
    "evaluate_reward",
    "evaluate_scores",
    "ipo_loss",
    "load_demonstrations",
    "load_pairs",
    "score_ensemble",
    "score_pairs",
    "split_by_prompt",
    "tokenise_pairs",
    "train_dpo",
    "train_reward",
    "train_sft",
]
