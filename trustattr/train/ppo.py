"""A compact PPO for RLHF (trl removed its PPOTrainer in 1.13; see the README for why this is our own).

:class:`CompactPPO` works on token ids and is tokenizer-agnostic: one :meth:`CompactPPO.step` samples a
response per query, scores it (any :data:`Scorer`; in the pipeline a trained reward model), builds
KL-penalised per-token rewards against the frozen reference, runs GAE, and takes ``ppo_epochs`` passes of
clipped policy + clipped value updates over minibatches. The KL coefficient adapts towards ``target_kl``.
The text-level stage (data, reward model, checkpoints) is :func:`trustattr.train.ppo_stage.train_ppo`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch
from transformers import PreTrainedModel, get_scheduler

from trustattr.train.config import PPOArguments
from trustattr.train.ppo_math import (
    AdaptiveKLController,
    clipped_policy_loss,
    clipped_value_loss,
    gae,
    kl_penalized_rewards,
    masked_mean,
    masked_whiten,
)
from trustattr.train.ppo_rollout import PolicyWithValue, Rollout, reference_logprobs, sample_responses, score_tokens

__all__ = ["CompactPPO", "Scorer"]

Scorer = Callable[[list[str], Rollout], torch.Tensor]
"""(prompts of the batch, rollout with response ids and mask) → [B] scores."""


class CompactPPO:
    """Policy + value head, reference, optimizer and KL controller; :meth:`step` is one PPO iteration.

    Args:
        policy: the causal LM to train (peft-wrapped for LoRA: the reference is then the policy with its
            adapters disabled, and ``reference`` must be None).
        reference: frozen starting model for full fine-tuning.
        scorer: sequence reward, see :data:`Scorer`.
    """

    def __init__(
        self,
        policy: PreTrainedModel,
        args: PPOArguments,
        scorer: Scorer,
        eos_token_id: int,
        pad_token_id: int,
        reference: PreTrainedModel | None = None,
    ):
        if reference is None and not hasattr(policy, "disable_adapter"):
            raise ValueError("reference: required unless the policy is a peft (LoRA) model")
        self.args = args
        self.scorer = scorer
        self.eos_token_id = eos_token_id
        self.pad_token_id = pad_token_id
        self.reference = reference.eval().requires_grad_(False) if reference is not None else None
        self.model = PolicyWithValue(policy, seed=args.seed)
        self.kl = AdaptiveKLController(args.init_kl_coef, args.target_kl, args.kl_horizon)
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        self.iteration = 0  # PPO iterations done (checkpointed)
        self.optimizer = torch.optim.AdamW(trainable, lr=args.learning_rate, weight_decay=args.weight_decay)
        updates_per_step = args.ppo_epochs * (args.rollout_batch_size // args.minibatch_size)
        total = args.steps * updates_per_step
        self.scheduler = get_scheduler(
            args.lr_scheduler, self.optimizer, num_warmup_steps=int(args.warmup_ratio * total), num_training_steps=total
        )

    def autocast(self):
        return torch.autocast("cpu", dtype=torch.bfloat16) if self.args.bf16 else contextlib.nullcontext()

    def generate(self, query_ids: torch.Tensor, query_mask: torch.Tensor) -> Rollout:
        with self.autocast():
            return sample_responses(
                self.model, query_ids, query_mask, self.args.max_new_tokens, self.args.temperature,
                self.eos_token_id, self.pad_token_id,
            )

    def step(self, query_ids: torch.Tensor, query_mask: torch.Tensor, prompts: list[str]) -> dict[str, float]:
        """One PPO iteration on a batch of left-padded queries [B, Q]; returns its statistics."""
        args = self.args
        rollout = self.generate(query_ids, query_mask)
        with torch.no_grad(), self.autocast():
            rollout.logprobs, rollout.values = score_tokens(self.model, rollout, args.temperature)
            rollout.ref_logprobs = reference_logprobs(self.model, self.reference, rollout, args.temperature)
        raw_scores = self.scorer(prompts, rollout).float()  # [B]
        rollout.scores = raw_scores.clamp(-args.cliprange_reward, args.cliprange_reward)
        mask = rollout.response_mask.float()  # [B, R]
        rewards, kl = kl_penalized_rewards(rollout.scores, rollout.logprobs, rollout.ref_logprobs, mask, self.kl.value)
        advantages, returns = gae(rewards, rollout.values.float(), mask, args.gamma, args.lam)  # [B, R] each
        if args.whiten_advantages:
            advantages = masked_whiten(advantages, mask)
        stats = self._optimise(rollout, advantages, returns)
        sequence_kl = kl.sum(-1).mean().item()
        stats.update(
            score=raw_scores.mean().item(),
            kl=sequence_kl,
            kl_coef=self.kl.value,
            response_length=mask.sum(-1).mean().item(),
            learning_rate=self.scheduler.get_last_lr()[0],
        )
        self.kl.update(sequence_kl, n_steps=query_ids.shape[0])
        self.iteration += 1
        return stats

    def _optimise(self, rollout: Rollout, advantages: torch.Tensor, returns: torch.Tensor) -> dict[str, float]:
        args = self.args
        batch = rollout.query_ids.shape[0]
        totals: dict[str, float] = {}
        updates = 0
        self.model.train()
        generator = torch.Generator().manual_seed(args.seed * 1_000_003 + self.iteration)
        for _ in range(args.ppo_epochs):
            order = torch.randperm(batch, generator=generator)
            for begin in range(0, batch, args.minibatch_size):
                index = order[begin : begin + args.minibatch_size]
                part = rollout.select(index)
                mask = part.response_mask.float()
                with self.autocast():
                    logprobs, values = score_tokens(self.model, part, args.temperature)  # [b, R] each
                policy_loss, policy_stats = clipped_policy_loss(
                    logprobs.float(), part.logprobs, advantages[index], mask, args.cliprange
                )
                value_loss, value_stats = clipped_value_loss(
                    values.float(), part.values.float(), returns[index], mask, args.cliprange_value
                )
                loss = policy_loss + args.vf_coef * value_loss
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(
                    [p for p in self.model.parameters() if p.requires_grad], args.max_grad_norm
                )
                self.optimizer.step()
                self.scheduler.step()
                step_stats = {"policy_loss": policy_loss.item(), "value_loss": value_loss.item(),
                              **policy_stats, **value_stats,
                              "mean_advantage": masked_mean(advantages[index], mask).item()}
                for key, value in step_stats.items():
                    totals[key] = totals.get(key, 0.0) + value
                updates += 1
        self.model.eval()
        return {key: value / updates for key, value in totals.items()}

    # --- state for checkpoints ---
    def trainable_state(self) -> dict[str, torch.Tensor]:
        """Trainable tensors (LoRA adapters or all weights, plus the value head), detached, by name."""
        return {name: p.detach().clone() for name, p in self.model.named_parameters() if p.requires_grad}

    def load_trainable_state(self, state: dict[str, torch.Tensor]) -> list[str]:
        """Load :meth:`trainable_state` output; returns the names that were expected but missing."""
        params = dict(self.model.named_parameters())
        missing = [name for name, p in params.items() if p.requires_grad and name not in state]
        with torch.no_grad():
            for name, tensor in state.items():
                if name in params:
                    params[name].copy_(tensor)
        return missing
