"""Preference losses against numbers worked by hand."""

from __future__ import annotations

import math

import pytest
import torch

from tutelage.training.losses import bradley_terry_loss, chosen_nll_loss, dpo_loss, ipo_loss


def t(*values: float) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)


def test_bradley_terry_by_hand() -> None:
    # r_c=1, r_r=0: -log sigmoid(1) = log(1 + e^-1) = 0.31326
    assert float(bradley_terry_loss(t(1.0), t(0.0))) == pytest.approx(0.313262, abs=1e-6)
    # margin 1 leaves a difference of 0: log 2 = 0.693147
    assert float(bradley_terry_loss(t(1.0), t(0.0), t(1.0))) == pytest.approx(math.log(2))
    # a batch is averaged: (log(1 + e^-1) + log(1 + e^1)) / 2 = (0.313262 + 1.313262) / 2
    assert float(bradley_terry_loss(t(1.0, 0.0), t(0.0, 1.0))) == pytest.approx(0.813262, abs=1e-6)


def test_dpo_by_hand() -> None:
    # h = (pi_c - ref_c) - (pi_r - ref_r) = (-1 + 2) - (-3 + 2) = 2; beta * h = 1
    # loss = log(1 + e^-1) = 0.313262
    loss = dpo_loss(t(-1.0), t(-3.0), t(-2.0), t(-2.0), beta=0.5)
    assert float(loss) == pytest.approx(0.313262, abs=1e-6)
    # policy equal to reference: h = 0, loss = log 2 whatever beta
    assert float(dpo_loss(t(-4.0), t(-5.0), t(-4.0), t(-5.0), beta=3.0)) == pytest.approx(
        math.log(2)
    )


def test_ipo_by_hand() -> None:
    # h = 2 as above; beta 0.5: (2 - 1 / (2 * 0.5))^2 = (2 - 1)^2 = 1
    assert float(ipo_loss(t(-1.0), t(-3.0), t(-2.0), t(-2.0), beta=0.5)) == pytest.approx(1.0)
    # beta 0.25: target 1 / 0.5 = 2 = h, so the loss is 0
    assert float(ipo_loss(t(-1.0), t(-3.0), t(-2.0), t(-2.0), beta=0.25)) == pytest.approx(0.0)


def test_chosen_nll_by_hand() -> None:
    # per token: 6 / 3 = 2 and 2 / 4 = 0.5; mean 1.25
    assert float(chosen_nll_loss(t(-6.0, -2.0), torch.tensor([3, 4]))) == pytest.approx(1.25)


def test_gradients_push_chosen_up_and_rejected_down() -> None:
    chosen, rejected = t(0.3).requires_grad_(), t(0.1).requires_grad_()
    bradley_terry_loss(chosen, rejected).backward()
    assert chosen.grad is not None and rejected.grad is not None
    assert float(chosen.grad) < 0 < float(rejected.grad)

    policy_c, policy_r = t(-2.0).requires_grad_(), t(-2.5).requires_grad_()
    (dpo_loss(policy_c, policy_r, t(-2.0), t(-2.0)) + chosen_nll_loss(policy_c, t(2))).backward()
    assert policy_c.grad is not None and policy_r.grad is not None
    assert float(policy_c.grad) < 0 < float(policy_r.grad)
