"""PPO arithmetic against hand computations."""

from __future__ import annotations

import math

import pytest
import torch

from trustattr.train.ppo_math import (
    AdaptiveKLController,
    clipped_policy_loss,
    clipped_value_loss,
    gae,
    kl_penalized_rewards,
    masked_mean,
    masked_whiten,
)
from trustattr.train.ppo_rollout import positions_from_mask, response_mask_after_eos


def test_gae_by_hand_with_padding():
    # one response of 3 tokens, then padding; gamma 0.9, lambda 0.5
    rewards = torch.tensor([[1.0, 0.0, 2.0, 9.0]], dtype=torch.float64)
    values = torch.tensor([[0.5, 1.0, 1.5, 7.0]], dtype=torch.float64)
    mask = torch.tensor([[1, 1, 1, 0]])
    gamma, lam = 0.9, 0.5
    d2 = 2.0 + gamma * 0.0 - 1.5  # V past the last token is 0 (the 7.0 is padding)
    d1 = 0.0 + gamma * 1.5 - 1.0
    d0 = 1.0 + gamma * 1.0 - 0.5
    a2 = d2
    a1 = d1 + gamma * lam * a2
    a0 = d0 + gamma * lam * a1
    advantages, returns = gae(rewards, values, mask, gamma, lam)
    torch.testing.assert_close(advantages, torch.tensor([[a0, a1, a2, 0.0]], dtype=torch.float64))
    torch.testing.assert_close(returns, torch.tensor([[a0 + 0.5, a1 + 1.0, a2 + 1.5, 0.0]], dtype=torch.float64))


def test_gae_paper_setting_gamma_one_is_reward_to_go_minus_value_when_lambda_one():
    rewards = torch.tensor([[0.1, -0.2, 0.3], [1.0, 0.0, 0.0]], dtype=torch.float64)
    values = torch.tensor([[0.3, 0.2, 0.1], [0.0, 0.4, 0.0]], dtype=torch.float64)
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    advantages, returns = gae(rewards, values, mask, gamma=1.0, lam=1.0)
    reward_to_go = torch.tensor([[0.2, 0.1, 0.3], [1.0, 0.0, 0.0]], dtype=torch.float64)
    torch.testing.assert_close(advantages, (reward_to_go - values) * mask)
    torch.testing.assert_close(returns, reward_to_go * mask)


def test_kl_penalized_rewards_put_the_score_on_the_last_token():
    logprobs = torch.tensor([[-1.0, -2.0, -0.5], [-1.0, -1.0, -1.0]])
    ref = torch.tensor([[-1.5, -1.0, -0.5], [-2.0, -1.0, -3.0]])
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    rewards, kl = kl_penalized_rewards(torch.tensor([3.0, -1.0]), logprobs, ref, mask, kl_coef=0.1)
    torch.testing.assert_close(kl, torch.tensor([[0.5, -1.0, 0.0], [1.0, 0.0, 2.0]]))
    torch.testing.assert_close(rewards, torch.tensor([[-0.05, 0.1 + 3.0, 0.0], [-0.1, 0.0, -0.2 - 1.0]]))


def test_clipped_policy_loss_by_hand():
    old = torch.zeros(1, 4)
    new = torch.log(torch.tensor([[1.5, 0.5, 1.1, 0.7]]))  # ratios
    advantages = torch.tensor([[1.0, 1.0, -2.0, -1.0]])
    mask = torch.ones(1, 4)
    loss, stats = clipped_policy_loss(new, old, advantages, mask, cliprange=0.2)
    # per token: max(-A r, -A clip(r)) = [-1.2, -0.5, 2.2, 0.8]
    assert loss.item() == pytest.approx((-1.2 - 0.5 + 2.2 + 0.8) / 4)
    # the clipped term wins on token 0 (A>0, r>1.2) and token 3 (A<0, r<0.8)
    assert stats["clipfrac"] == pytest.approx(2 / 4)


def test_clipped_policy_loss_gradient_is_zero_when_clipped():
    new = torch.log(torch.tensor([[1.5]])).requires_grad_()
    loss, _ = clipped_policy_loss(new, torch.zeros(1, 1), torch.tensor([[1.0]]), torch.ones(1, 1), 0.2)
    loss.backward()
    assert new.grad.item() == 0.0


def test_clipped_value_loss_by_hand():
    values = torch.tensor([[2.0, 0.0]])
    old = torch.tensor([[1.0, 0.1]])
    returns = torch.tensor([[3.0, 0.0]])
    loss, stats = clipped_value_loss(values, old, returns, torch.ones(1, 2), cliprange_value=0.2)
    # token 0: unclipped (2-3)^2 = 1, clipped (1.2-3)^2 = 3.24 -> 3.24; token 1: 0 vs (0.0 - 0)^2... clipped 0.0 -> 0
    assert loss.item() == pytest.approx(0.5 * (3.24 + 0.0) / 2)
    assert stats["value_clipfrac"] == pytest.approx(0.5)


def test_masked_statistics_ignore_padding():
    values = torch.tensor([[1.0, 3.0, 100.0]])
    mask = torch.tensor([[1, 1, 0]])
    assert masked_mean(values, mask).item() == 2.0
    whitened = masked_whiten(values, mask)
    torch.testing.assert_close(whitened, torch.tensor([[-1.0, 1.0, 0.0]]), atol=1e-6, rtol=0)


def test_adaptive_kl_controller_follows_the_formula():
    controller = AdaptiveKLController(value=0.05, target=6.0, horizon=10000)
    controller.update(current_kl=9.0, n_steps=100)  # error clipped to 0.2
    assert controller.value == pytest.approx(0.05 * (1 + 0.2 * 100 / 10000))
    controller.update(current_kl=5.4, n_steps=100)  # error -0.1
    assert controller.value == pytest.approx(0.05 * (1 + 0.2 * 0.01) * (1 - 0.1 * 0.01))
    fixed = AdaptiveKLController(value=0.05, target=0.0, horizon=10000)
    assert fixed.update(100.0, 100) == 0.05


def test_response_mask_stops_after_the_first_eos():
    ids = torch.tensor([[5, 2, 7, 2], [5, 6, 7, 8], [2, 2, 2, 2]])
    expected = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]])
    assert torch.equal(response_mask_after_eos(ids, eos_token_id=2), expected)


def test_positions_skip_left_padding():
    mask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 0]])
    assert torch.equal(positions_from_mask(mask), torch.tensor([[0, 0, 0, 1, 2], [0, 1, 2, 3, 3]]))


def test_gae_zero_lambda_is_one_step_td():
    rewards = torch.tensor([[1.0, 2.0]])
    values = torch.tensor([[0.5, 0.25]])
    advantages, _ = gae(rewards, values, torch.ones(1, 2), gamma=0.5, lam=0.0)
    torch.testing.assert_close(advantages, torch.tensor([[1.0 + 0.5 * 0.25 - 0.5, 2.0 - 0.25]]))
    assert math.isfinite(advantages.sum().item())
