"""PPO rollouts: the policy with its value head, sampling responses, and per-token log-probs and values.

Queries are left-padded (so every response starts at the same column) and responses right-padded; position
ids follow the attention mask, as in ``generate``, so log-probs recomputed here match the sampling ones.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from torch import nn
from transformers import PreTrainedModel

__all__ = [
    "PolicyWithValue",
    "Rollout",
    "positions_from_mask",
    "reference_logprobs",
    "response_mask_after_eos",
    "sample_responses",
    "score_tokens",
]


class PolicyWithValue(nn.Module):
    """A causal LM (plain or peft-wrapped) plus a scalar value head on its last hidden state."""

    def __init__(self, policy: PreTrainedModel, seed: int = 0):
        super().__init__()
        self.policy = policy
        hidden = policy.config.get_text_config().hidden_size
        self.value_head = nn.Linear(hidden, 1)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            nn.init.normal_(self.value_head.weight, std=1.0 / (hidden + 1))
        nn.init.zeros_(self.value_head.bias)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """[B, T] → logits [B, T, V], values [B, T]."""
        outputs = self.policy(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=positions_from_mask(attention_mask),
            output_hidden_states=True,
            use_cache=False,
        )
        values = self.value_head(outputs.hidden_states[-1].float()).squeeze(-1)  # [B, T]
        return outputs.logits, values

    def reference_context(self):
        """Context in which ``policy`` computes the reference: adapters disabled (LoRA), else a no-op."""
        disable = getattr(self.policy, "disable_adapter", None)
        return disable() if disable is not None else contextlib.nullcontext()


@dataclass
class Rollout:
    """One batch of sampled responses and what PPO needs about them."""

    query_ids: torch.Tensor  # [B, Q] left-padded
    query_mask: torch.Tensor  # [B, Q]
    response_ids: torch.Tensor  # [B, R] right-padded
    response_mask: torch.Tensor  # [B, R] 1 up to and including eos
    logprobs: torch.Tensor | None = None  # [B, R] under the sampling policy
    ref_logprobs: torch.Tensor | None = None  # [B, R] under the reference
    values: torch.Tensor | None = None  # [B, R]
    scores: torch.Tensor | None = None  # [B] sequence scores used as reward

    def select(self, index: torch.Tensor) -> "Rollout":
        fields = {name: getattr(self, name) for name in self.__dataclass_fields__}
        return Rollout(**{name: None if value is None else value[index] for name, value in fields.items()})


def positions_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """Position ids that skip left padding: [B, T] → [B, T]."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def response_mask_after_eos(response_ids: torch.Tensor, eos_token_id: int) -> torch.Tensor:
    """1 on tokens up to and including the first eos of each row, 0 after it: [B, R] → [B, R] int64."""
    is_eos = (response_ids == eos_token_id).long()  # [B, R]
    eos_before = is_eos.cumsum(-1) - is_eos  # [B, R] number of eos strictly before t
    return (eos_before == 0).long()


@torch.no_grad()
def sample_responses(
    model: PolicyWithValue,
    query_ids: torch.Tensor,
    query_mask: torch.Tensor,
    max_new_tokens: int,
    temperature: float,
    eos_token_id: int,
    pad_token_id: int,
) -> Rollout:
    """Sample one response per query (pure sampling: top_k 0, top_p 1, as in the paper's PPO)."""
    policy = model.policy
    was_training = policy.training
    policy.eval()
    try:
        output = policy.generate(
            input_ids=query_ids,
            attention_mask=query_mask,
            do_sample=True,
            temperature=temperature,
            top_k=0,
            top_p=1.0,
            max_new_tokens=max_new_tokens,
            eos_token_id=eos_token_id,
            pad_token_id=pad_token_id,
        )
    finally:
        policy.train(was_training)
    response_ids = output[:, query_ids.shape[1] :]  # [B, R]
    mask = response_mask_after_eos(response_ids, eos_token_id)
    response_ids = torch.where(mask.bool(), response_ids, torch.full_like(response_ids, pad_token_id))
    return Rollout(query_ids=query_ids, query_mask=query_mask, response_ids=response_ids, response_mask=mask)


def score_tokens(model: PolicyWithValue, rollout: Rollout, temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probs of the response tokens and values at the positions that predict them: ([B, R], [B, R])."""
    input_ids, attention_mask, predicting = _sequence(rollout)
    logits, values = model(input_ids, attention_mask)  # [B, Q+R, V], [B, Q+R]
    return _gather_logprobs(logits[:, predicting], rollout.response_ids, temperature), values[:, predicting]


@torch.no_grad()
def reference_logprobs(
    model: PolicyWithValue, reference: PreTrainedModel | None, rollout: Rollout, temperature: float
) -> torch.Tensor:
    """Log-probs of the response tokens under the reference: [B, R].

    ``reference`` None means the policy with its LoRA adapters disabled (the exact starting model).
    """
    input_ids, attention_mask, predicting = _sequence(rollout)
    if reference is None:
        with model.reference_context():
            logits = model.policy(
                input_ids=input_ids, attention_mask=attention_mask,
                position_ids=positions_from_mask(attention_mask), use_cache=False,
            ).logits
    else:
        logits = reference(
            input_ids=input_ids, attention_mask=attention_mask,
            position_ids=positions_from_mask(attention_mask), use_cache=False,
        ).logits  # [B, Q+R, V]
    return _gather_logprobs(logits[:, predicting], rollout.response_ids, temperature)


def _sequence(rollout: Rollout) -> tuple[torch.Tensor, torch.Tensor, slice]:
    input_ids = torch.cat([rollout.query_ids, rollout.response_ids], dim=1)  # [B, Q+R]
    attention_mask = torch.cat([rollout.query_mask, rollout.response_mask], dim=1)  # [B, Q+R]
    predicting = slice(rollout.query_ids.shape[1] - 1, input_ids.shape[1] - 1)  # positions predicting a response token
    return input_ids, attention_mask, predicting


def _gather_logprobs(logits: torch.Tensor, tokens: torch.Tensor, temperature: float) -> torch.Tensor:
    """[B, R, V] logits, [B, R] tokens → [B, R] log-probs at the sampling temperature."""
    logprobs = torch.log_softmax(logits.float() / temperature, dim=-1)  # [B, R, V]
    return logprobs.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)  # [B, R]
