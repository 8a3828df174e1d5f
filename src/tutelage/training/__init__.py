"""Training from dataset versions: reward models first (issue 6).

Importing this package imports torch; the CLI imports it only when a command trains.
"""

from __future__ import annotations

from tutelage.training.data import PreferenceData, TrainingPair, load_pairs, tokenise_pairs
from tutelage.training.losses import bradley_terry_loss, chosen_nll_loss, dpo_loss, ipo_loss
from tutelage.training.reward import RewardConfig, RewardRun, score_pairs, train_reward

__all__ = [
    "PreferenceData",
    "RewardConfig",
    "RewardRun",
    "TrainingPair",
    "bradley_terry_loss",
    "chosen_nll_loss",
    "dpo_loss",
    "ipo_loss",
    "load_pairs",
    "score_pairs",
    "tokenise_pairs",
    "train_reward",
]
