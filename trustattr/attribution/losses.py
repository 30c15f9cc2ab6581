"""Per-pair losses whose gradients are attributed (paper.md §4.3-4.4, with the fixes of §4.7).

Each loss returns one value per pair, computed in one batched forward; the engine backpropagates their
SUM, so each row's output gradient holds only its own pair's gradient (rows never mix), and a pair's gradient
is the segment sum of its rows.

    sft     token-mean cross-entropy over the response tokens of (prompt, chosen)
    dpo     -log sigmoid(beta [(log pi(y_w|x) - log ref(y_w|x)) - (log pi(y_l|x) - log ref(y_l|x))]),
            sequence log-probs summed over response tokens; reference log-probs precomputed once
    reward  Bradley-Terry -log sigmoid(r(x, y_w) - r(x, y_l)) of a reward model
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedTokenizerBase

from trustattr.attribution.encoding import EncodedRows, encode_pairs

__all__ = [
    "DPOLoss",
    "LossBatch",
    "MarginLoss",
    "PairLoss",
    "RewardLoss",
    "SFTLoss",
    "causal_lm",
    "make_loss",
    "sequence_logprobs",
]

RewardFn = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]  # (model, ids, mask) -> [R]


@dataclass(frozen=True)
class LossBatch:
    ids: list[str]  # [P] pair ids
    rows: EncodedRows  # [R, T]
    segments: torch.Tensor | None  # [R] int64 pair index of each row (None: one row per pair)
    reference: torch.Tensor | None = None  # [P, 2] reference log-probs (chosen, rejected), dpo only

    @property
    def num_pairs(self) -> int:
        return len(self.ids)


def causal_lm(model: nn.Module) -> nn.Module:
    """The transformers CausalLM inside a PEFT wrapper (or the model itself)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def sequence_logprobs(model: nn.Module, rows: EncodedRows, full_logits: bool = False) -> torch.Tensor:
    """Summed log-probs of each row's response tokens -> [R] (float32, float64 for a float64 model).

    The output layer runs only on the positions that predict a response token (``full_logits=False``), so
    the 49k-wide logits are never built for prompt or padding positions. ``full_logits=True`` runs it on
    every position with the batch shape kept ([R, T, V]), which a tracked output layer needs: its captured
    input and output gradient then have the [R, T] layout of the token mask like every other module (the last
    position predicts no token, so its output gradient is zero).
    """
    lm = causal_lm(model)
    hidden = lm.get_decoder()(input_ids=rows.input_ids, attention_mask=rows.attention_mask).last_hidden_state
    head = lm.get_output_embeddings()
    targets = rows.input_ids[:, 1:]  # [R, T-1]
    predicts = rows.response_mask[:, 1:]  # [R, T-1] position t predicts response token t+1
    acc = torch.float64 if hidden.dtype == torch.float64 else torch.float32
    if full_logits:
        logp = F.log_softmax(head(hidden).to(acc)[:, :-1], dim=-1)  # [R, T-1, V] of the head's [R, T, V]
        token = logp.gather(-1, targets[..., None])[..., 0]  # [R, T-1]
        return (token * predicts).sum(1)
    logits = head(hidden[:, :-1][predicts]).to(acc)  # [M, V]
    token = F.log_softmax(logits, dim=-1).gather(-1, targets[predicts][:, None])[:, 0]  # [M]
    row = torch.arange(rows.input_ids.shape[0])[:, None].expand_as(predicts)[predicts]  # [M]
    return torch.zeros(rows.input_ids.shape[0], dtype=acc).index_add(0, row, token)


class PairLoss(ABC):
    """One loss per preference pair; ``encode`` makes the rows, ``losses`` the per-pair values [P]."""

    name: str = ""
    full_logits: bool = False  # set by the engine when the output layer is tracked

    def __init__(self, max_length: int, max_prompt_length: int) -> None:
        self.max_length, self.max_prompt_length = max_length, max_prompt_length

    def _encode(self, tokenizer, pairs: Sequence, sides: Sequence[str]) -> EncodedRows:
        return encode_pairs(tokenizer, pairs, sides, self.max_length, self.max_prompt_length)

    def encode(self, tokenizer: PreTrainedTokenizerBase, pairs: Sequence,
               reference: torch.Tensor | None = None) -> LossBatch:
        """Rows chosen_0..chosen_{P-1}, rejected_0..rejected_{P-1}; segments map both to their pair."""
        rows = self._encode(tokenizer, pairs, ("chosen", "rejected"))
        segments = torch.arange(len(pairs)).repeat(2)  # [2P]
        return LossBatch([p.id for p in pairs], rows, segments, reference)

    @abstractmethod
    def losses(self, model: nn.Module, batch: LossBatch) -> torch.Tensor:
        """Per-pair losses [P]."""

    def describe(self) -> dict[str, object]:
        return {"loss": self.name, "max_length": self.max_length, "max_prompt_length": self.max_prompt_length}


class SFTLoss(PairLoss):
    name = "sft"

    def encode(self, tokenizer, pairs, reference=None) -> LossBatch:
        rows = self._encode(tokenizer, pairs, ("chosen",))
        return LossBatch([p.id for p in pairs], rows, None, None)

    def losses(self, model, batch) -> torch.Tensor:
        logps = sequence_logprobs(model, batch.rows, self.full_logits)  # [P]
        counts = batch.rows.response_mask[:, 1:].sum(1).clamp_min(1)  # [P]
        return -logps / counts


class DPOLoss(PairLoss):
    name = "dpo"

    def __init__(self, max_length: int, max_prompt_length: int, beta: float = 0.1) -> None:
        super().__init__(max_length, max_prompt_length)
        self.beta = beta

    def margins(self, model, batch) -> torch.Tensor:
        """``(log pi(y_w) - log ref(y_w)) - (log pi(y_l) - log ref(y_l))`` per pair -> [P]."""
        if batch.reference is None:
            raise ValueError(f"{type(self).__name__} needs the reference log-probs of the batch (LossBatch.reference)")
        logps = sequence_logprobs(model, batch.rows, self.full_logits)  # [2P]
        p = batch.num_pairs
        ref = batch.reference.to(logps.dtype)  # [P, 2]
        return (logps[:p] - ref[:, 0]) - (logps[p:] - ref[:, 1])

    def losses(self, model, batch) -> torch.Tensor:
        return -F.logsigmoid(self.beta * self.margins(model, batch))

    def describe(self) -> dict[str, object]:
        return {**super().describe(), "beta": self.beta}


class MarginLoss(DPOLoss):
    """The query side of an output-function measurement: ``-beta x`` the DPO margin (no sigmoid weighting).

    Its gradient is ``-beta`` times the gradient of the margin, so a raw score (the estimated change of this
    "loss") is minus the estimated change of the margin, for every query pair alike: the pairs the model already
    ranks right count as much as the others (the DPO loss would scale each by ``sigma(-beta m)``).
    """

    name = "dpo_margin"

    def losses(self, model, batch) -> torch.Tensor:
        return -self.beta * self.margins(model, batch)


class RewardLoss(PairLoss):
    name = "reward"

    def __init__(self, max_length: int, max_prompt_length: int, reward_fn: RewardFn) -> None:
        super().__init__(max_length, max_prompt_length)
        self.reward_fn = reward_fn

    def losses(self, model, batch) -> torch.Tensor:
        rewards = self.reward_fn(model, batch.rows.input_ids, batch.rows.attention_mask)  # [2P]
        p = batch.num_pairs
        return -F.logsigmoid(rewards[:p] - rewards[p:])


def make_loss(name: str, max_length: int, max_prompt_length: int, beta: float = 0.1,
              reward_fn: RewardFn | None = None) -> PairLoss:
    if name == "sft":
        return SFTLoss(max_length, max_prompt_length)
    if name == "dpo":
        return DPOLoss(max_length, max_prompt_length, beta)
    if name == "dpo_margin":
        return MarginLoss(max_length, max_prompt_length, beta)
    if name == "reward":
        if reward_fn is None:
            raise ValueError("the reward loss needs `reward_fn` (how the reward model's scalar is read)")
        return RewardLoss(max_length, max_prompt_length, reward_fn)
    raise ValueError(f"`loss` must be one of sft, dpo, dpo_margin, reward; got {name!r}")
