"""The arithmetic of PPO, as pure functions on [B, R] tensors (B rollouts, R response tokens).

``mask`` is 1 on the response tokens that were generated (up to and including eos) and 0 on padding.
Formulas follow the InstructGPT / trlX form used by the paper (paper.md §1.3-1.4):

* per-token reward  r_t = −kl_coef · (log π(a_t) − log π_ref(a_t)), plus the clipped score at the last token;
* GAE               δ_t = r_t + γ V_{t+1} − V_t,  A_t = δ_t + γλ A_{t+1}  (V and A are 0 past the last token),
                    returns R_t = A_t + V_t;
* policy loss       −min(ρ_t A_t, clip(ρ_t, 1 − ε, 1 + ε) A_t),  ρ_t = exp(log π_new − log π_old);
* value loss        ½ max((V − R)², (V_old + clip(V − V_old, ±ε_v) − R)²);
* adaptive KL       β ← β · (1 + clip(KL / target − 1, ±0.2) · n / horizon)  (Ziegler et al. 2019).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = [
    "AdaptiveKLController",
    "clipped_policy_loss",
    "clipped_value_loss",
    "gae",
    "kl_penalized_rewards",
    "masked_mean",
    "masked_whiten",
]


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` over positions where ``mask`` is 1 (0 when the mask is empty)."""
    mask = mask.to(values.dtype)
    return (values * mask).sum() / mask.sum().clamp(min=1.0)


def masked_whiten(values: torch.Tensor, mask: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """(values − mean) / std over the masked positions; masked-out positions become 0."""
    mean = masked_mean(values, mask)
    variance = masked_mean((values - mean) ** 2, mask)
    return (values - mean) * torch.rsqrt(variance + eps) * mask.to(values.dtype)


def kl_penalized_rewards(
    scores: torch.Tensor,
    logprobs: torch.Tensor,
    ref_logprobs: torch.Tensor,
    mask: torch.Tensor,
    kl_coef: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token rewards and per-token KL estimates.

    Args:
        scores: [B] sequence scores (already clipped).
        logprobs, ref_logprobs: [B, R] log-probs of the sampled tokens under the policy and the reference.
        mask: [B, R].
    Returns:
        rewards [B, R] and kl [B, R] (both 0 on padding).
    """
    mask = mask.to(logprobs.dtype)
    kl = (logprobs - ref_logprobs) * mask  # [B, R]
    rewards = -kl_coef * kl  # [B, R]
    last = (mask.sum(-1).long() - 1).clamp(min=0)  # [B] index of the last response token
    rows = torch.arange(rewards.shape[0], device=rewards.device)
    has_tokens = mask.sum(-1) > 0  # [B]
    rewards[rows, last] += torch.where(has_tokens, scores.to(rewards.dtype), torch.zeros_like(scores, dtype=rewards.dtype))
    return rewards, kl


def gae(
    rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float, lam: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation over right-padded responses.

    Args:
        rewards, values, mask: [B, R].
    Returns:
        advantages [B, R], returns [B, R] (0 on padding).
    """
    mask = mask.to(values.dtype)
    values = values * mask
    length = rewards.shape[1]
    advantages = torch.zeros_like(values)
    running = torch.zeros_like(values[:, 0])  # [B]
    for t in reversed(range(length)):
        next_value = values[:, t + 1] if t + 1 < length else torch.zeros_like(running)  # already 0 past the end
        next_mask = mask[:, t + 1] if t + 1 < length else torch.zeros_like(running)
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        running = (delta + gamma * lam * running * next_mask) * mask[:, t]
        advantages[:, t] = running
    returns = (advantages + values) * mask
    return advantages, returns


def clipped_policy_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    cliprange: float,
) -> tuple[torch.Tensor, dict[str, float]]:
    """PPO's clipped surrogate (to minimise), averaged over response tokens; plus clip fraction and approx. KL."""
    log_ratio = logprobs - old_logprobs  # [B, R]
    ratio = torch.exp(log_ratio)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - cliprange, 1.0 + cliprange)
    loss = masked_mean(torch.maximum(unclipped, clipped), mask)
    with torch.no_grad():
        stats = {
            "clipfrac": masked_mean((clipped > unclipped).to(logprobs.dtype), mask).item(),
            "approx_kl": masked_mean(0.5 * log_ratio**2, mask).item(),
        }
    return loss, stats


def clipped_value_loss(
    values: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    mask: torch.Tensor,
    cliprange_value: float,
) -> tuple[torch.Tensor, dict[str, float]]:
    """½ · max of the unclipped and clipped squared errors, averaged over response tokens."""
    clipped_values = old_values + torch.clamp(values - old_values, -cliprange_value, cliprange_value)
    unclipped_error = (values - returns) ** 2
    clipped_error = (clipped_values - returns) ** 2
    loss = 0.5 * masked_mean(torch.maximum(unclipped_error, clipped_error), mask)
    with torch.no_grad():
        stats = {"value_clipfrac": masked_mean((clipped_error > unclipped_error).to(values.dtype), mask).item()}
    return loss, stats


@dataclass
class AdaptiveKLController:
    """KL coefficient that tracks a target KL (``target`` 0 = fixed coefficient)."""

    value: float
    target: float
    horizon: int

    def update(self, current_kl: float, n_steps: int) -> float:
        if self.target > 0:
            error = min(max(current_kl / self.target - 1.0, -0.2), 0.2)
            self.value *= 1.0 + error * n_steps / self.horizon
        return self.value
