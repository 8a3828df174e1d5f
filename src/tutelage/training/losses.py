"""Preference losses as pure functions on tensors: no models, no I/O.

Every function takes 1-D tensors of shape ``(batch,)``, one entry per preference pair,
and returns the mean loss over the batch as a 0-d tensor.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["bradley_terry_loss", "chosen_nll_loss", "dpo_loss", "ipo_loss"]


def bradley_terry_loss(
    chosen_rewards: torch.Tensor,
    rejected_rewards: torch.Tensor,
    margin: torch.Tensor | None = None,
) -> torch.Tensor:
    """Return mean ``-logsigmoid(r_chosen - r_rejected - margin)``.

    Shapes: all ``(batch,)``; `margin` (optional, >= 0) asks the chosen reward to lead
    by at least that much, e.g. more for a decisive preference than a slight one.
    """
    difference = chosen_rewards - rejected_rewards
    if margin is not None:
        difference = difference - margin
    return -F.logsigmoid(difference).mean()


def _log_ratio_difference(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    reference_chosen_logps: torch.Tensor,
    reference_rejected_logps: torch.Tensor,
) -> torch.Tensor:
    chosen = policy_chosen_logps - reference_chosen_logps
    rejected = policy_rejected_logps - reference_rejected_logps
    return chosen - rejected


def dpo_loss(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    reference_chosen_logps: torch.Tensor,
    reference_rejected_logps: torch.Tensor,
    beta: float = 0.1,
) -> torch.Tensor:
    """Return the mean DPO sigmoid loss ``-logsigmoid(beta * h)``.

    ``h = (pi_c - ref_c) - (pi_r - ref_r)``, each a summed log-probability of an answer
    given its prompt, shape ``(batch,)``.
    """
    h = _log_ratio_difference(
        policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps
    )
    return -F.logsigmoid(beta * h).mean()


def ipo_loss(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    reference_chosen_logps: torch.Tensor,
    reference_rejected_logps: torch.Tensor,
    beta: float = 0.1,
) -> torch.Tensor:
    """Return the mean IPO loss ``(h - 1 / (2 * beta))**2`` (Azar et al., 2023).

    `h` as in `dpo_loss`; IPO expects log-probabilities averaged over the answer's
    tokens rather than summed. Shapes: all ``(batch,)``.
    """
    h = _log_ratio_difference(
        policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps
    )
    return ((h - 1.0 / (2.0 * beta)) ** 2).mean()


def chosen_nll_loss(chosen_logps: torch.Tensor, chosen_token_counts: torch.Tensor) -> torch.Tensor:
    """Return the mean per-token negative log-likelihood of the chosen answers.

    `chosen_logps` is each answer's summed log-probability, `chosen_token_counts` its
    number of answer tokens; both ``(batch,)``. Added to the DPO loss (times a weight)
    it keeps the chosen answer's likelihood from falling.
    """
    return -(chosen_logps / chosen_token_counts.to(chosen_logps.dtype)).mean()
