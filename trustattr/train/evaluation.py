"""Held-out evaluation of each stage: response NLL (SFT), preference accuracy (DPO), reward accuracy (RM).

All three read the same (prompt, chosen, rejected) pairs of the held-out split, cut as in training.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from trustattr.preference_data import PreferencePair
from trustattr.train.data import RESPONSE_SEPARATOR
from trustattr.train.logprobs import side_logprobs, tokenize_pairs
from trustattr.train.reward import reward_at_last_token

__all__ = ["dpo_margins", "pair_logprobs", "preference_accuracy", "response_nll", "reward_accuracy", "rewards_of"]


def response_nll(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, pairs: Sequence[PreferencePair], batch_size: int = 8
) -> dict[str, float]:
    """Mean negative log-likelihood per token of the chosen responses (lower = closer to the data)."""
    total = -side_logprobs(model, tokenizer, pairs, "chosen", batch_size=batch_size).sum().item()
    tokens = int(tokenize_pairs(tokenizer, pairs, ("chosen",)).response_mask[:, 1:].sum()) if pairs else 0
    return {"chosen_nll_per_token": total / max(tokens, 1), "pairs": float(len(pairs))}


def pair_logprobs(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, pairs: Sequence[PreferencePair], batch_size: int = 8
) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed response log-probs of the chosen and the rejected response of each pair: ([N], [N])."""
    chosen = side_logprobs(model, tokenizer, pairs, "chosen", batch_size)
    rejected = side_logprobs(model, tokenizer, pairs, "rejected", batch_size)
    return chosen, rejected


def dpo_margins(
    policy_logprobs: tuple[torch.Tensor, torch.Tensor], reference_logprobs: tuple[torch.Tensor, torch.Tensor], beta: float
) -> torch.Tensor:
    """β[(log π(y_w) − log π_ref(y_w)) − (log π(y_l) − log π_ref(y_l))] per pair, from :func:`pair_logprobs` -> [N]."""
    (chosen, rejected), (ref_chosen, ref_rejected) = policy_logprobs, reference_logprobs
    return beta * ((chosen - ref_chosen) - (rejected - ref_rejected))


def preference_accuracy(
    policy: PreTrainedModel,
    reference: PreTrainedModel | None,
    tokenizer: PreTrainedTokenizerBase,
    pairs: Sequence[PreferencePair],
    beta: float = 0.1,
    batch_size: int = 8,
    reference_logprobs: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> dict[str, float]:
    """How often a policy prefers the chosen response.

    The reference enters through ``reference`` (a model), or ``reference_logprobs`` (its :func:`pair_logprobs`,
    e.g. saved before training), or neither: then the policy is its own reference.

    Returns:
        ``implicit_reward_accuracy``: share of pairs with DPO margin
        β[(log π(y_w) − log π_ref(y_w)) − (log π(y_l) − log π_ref(y_l))] > 0, ties counting 1/2
        (so a policy equal to its reference scores exactly 0.5); ``mean_margin``: mean of that margin;
        ``logprob_accuracy``: share with log π(y_w) > log π(y_l) (summed over response tokens);
        ``reference_logprob_accuracy``: the same for the reference.
    """
    chosen, rejected = pair_logprobs(policy, tokenizer, pairs, batch_size)  # [N], [N]
    if reference_logprobs is not None:
        ref_chosen, ref_rejected = reference_logprobs
    elif reference is not None:
        ref_chosen, ref_rejected = pair_logprobs(reference, tokenizer, pairs, batch_size)
    else:
        ref_chosen, ref_rejected = chosen.clone(), rejected.clone()
    margin = dpo_margins((chosen, rejected), (ref_chosen, ref_rejected), beta)  # [N]
    return {
        "implicit_reward_accuracy": _share_positive(margin),
        "mean_margin": margin.mean().item(),
        "logprob_accuracy": (chosen > rejected).float().mean().item(),
        "reference_logprob_accuracy": (ref_chosen > ref_rejected).float().mean().item(),
        "pairs": float(len(pairs)),
    }


@torch.no_grad()
def rewards_of(
    reward_model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    responses: Sequence[str],
    batch_size: int = 8,
) -> torch.Tensor:
    """Reward of each ``prompt + separator + response + eos``: [N] float32 (see trustattr.train.reward)."""

    def encode(begin: int, end: int) -> tuple[torch.Tensor, torch.Tensor]:
        pieces = zip(prompts[begin:end], responses[begin:end])
        texts = [p + RESPONSE_SEPARATOR + r + tokenizer.eos_token for p, r in pieces]
        batch = tokenizer(texts, add_special_tokens=False, padding=True, return_tensors="pt")
        return batch.input_ids, batch.attention_mask

    return _batched_rewards(reward_model, len(prompts), batch_size, encode)


def _batched_rewards(reward_model: PreTrainedModel, count: int, batch_size: int,
                     encode: Callable[[int, int], tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """Rewards [count] of the rows ``encode(begin, end)`` gives (input ids, attention mask), batch by batch, in eval
    mode (the model's mode is restored)."""
    device = next(reward_model.parameters()).device
    was_training = reward_model.training
    reward_model.eval()
    out = []
    try:
        for begin in range(0, count, batch_size):
            ids, mask = encode(begin, min(begin + batch_size, count))
            out.append(reward_at_last_token(reward_model, ids.to(device), mask.to(device)).cpu())
    finally:
        reward_model.train(was_training)
    return torch.cat(out) if out else torch.zeros(0)


def reward_accuracy(
    reward_model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    pairs: Sequence[PreferencePair],
    batch_size: int = 8,
) -> dict[str, float]:
    """Share of pairs where the reward model scores the chosen response higher (ties count 1/2)."""
    chosen = _pair_rewards(reward_model, tokenizer, pairs, "chosen", batch_size)
    rejected = _pair_rewards(reward_model, tokenizer, pairs, "rejected", batch_size)
    return {
        "accuracy": _share_positive(chosen - rejected),
        "mean_margin": (chosen - rejected).mean().item(),
        "mean_reward_chosen": chosen.mean().item(),
        "pairs": float(len(pairs)),
    }


@torch.no_grad()
def _pair_rewards(
    reward_model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, pairs: Sequence[PreferencePair], side: str,
    batch_size: int,
) -> torch.Tensor:
    """Reward of one side of each pair, tokenized as trl's RewardTrainer does (prompt + response [+ eos]): [N]."""

    def encode(begin: int, end: int) -> tuple[torch.Tensor, torch.Tensor]:
        rows = tokenize_pairs(tokenizer, pairs[begin:end], (side,))
        return rows.input_ids, rows.attention_mask

    return _batched_rewards(reward_model, len(pairs), batch_size, encode)


def _share_positive(values: torch.Tensor) -> float:
    return ((values > 0).float() + 0.5 * (values == 0).float()).mean().item()
