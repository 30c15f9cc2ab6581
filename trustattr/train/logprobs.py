"""Summed log-probabilities of responses given prompts, tokenized exactly as trl's DPOTrainer does.

``prompt + RESPONSE_SEPARATOR + response (+ eos)`` is tokenized as one string; the response tokens are the ones
after the longest common prefix with the tokenized prompt (so a token merging across the boundary counts as
response). The attribution engine uses the same tokenization for DPO/SFT losses.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from trustattr.train.data import RESPONSE_SEPARATOR

__all__ = ["TokenizedResponses", "sequence_logprobs", "tokenize_responses", "token_logprobs"]


@dataclass
class TokenizedResponses:
    """Right-padded prompt+response batch."""

    input_ids: torch.Tensor  # [N, T] int64
    attention_mask: torch.Tensor  # [N, T] int64, 1 on real tokens
    response_mask: torch.Tensor  # [N, T] bool, True on response tokens (the positions whose log-prob counts)


def tokenize_responses(
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    responses: Sequence[str],
    add_eos: bool = True,
    max_length: int | None = None,
) -> TokenizedResponses:
    """Tokenize (prompt, response) pairs; ``max_length`` keeps the first tokens (as trl's keep_start)."""
    if len(prompts) != len(responses):
        raise ValueError(f"prompts and responses must have the same length; got {len(prompts)} and {len(responses)}")
    eos = tokenizer.eos_token if add_eos else ""
    rows, starts = [], []
    for prompt, response in zip(prompts, responses):
        prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        full_ids = tokenizer(prompt + RESPONSE_SEPARATOR + response + eos, add_special_tokens=False)["input_ids"]
        start = _common_prefix_length(prompt_ids, full_ids)
        if max_length is not None:
            full_ids = full_ids[:max_length]
        rows.append(full_ids)
        starts.append(start)
    width = max(len(row) for row in rows)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    input_ids = torch.full((len(rows), width), pad, dtype=torch.long)  # [N, T]
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)  # [N, T]
    response_mask = torch.zeros((len(rows), width), dtype=torch.bool)  # [N, T]
    for i, (row, start) in enumerate(zip(rows, starts)):
        input_ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        attention_mask[i, : len(row)] = 1
        response_mask[i, start : len(row)] = True
    return TokenizedResponses(input_ids, attention_mask, response_mask)


def token_logprobs(logits: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
    """log p(token t | tokens < t) for t >= 1.

    Args:
        logits: [N, T, V] next-token logits.
        input_ids: [N, T].
    Returns:
        [N, T - 1]: entry t-1 is the log-prob of input_ids[:, t].
    """
    logits = logits if logits.dtype == torch.float64 else logits.float()  # bf16/fp16 are summed in fp32
    logprobs = torch.log_softmax(logits[:, :-1], dim=-1)  # [N, T-1, V]
    return logprobs.gather(-1, input_ids[:, 1:].unsqueeze(-1)).squeeze(-1)  # [N, T-1]


@torch.no_grad()
def sequence_logprobs(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    responses: Sequence[str],
    batch_size: int = 8,
    add_eos: bool = True,
    max_length: int | None = None,
) -> torch.Tensor:
    """Sum over response tokens of log p(token | prefix): [N] on the CPU (float64 for float64 models, else float32).

    Responses are joined to prompts by ``RESPONSE_SEPARATOR`` and end with eos (``add_eos``), as in training.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size: expected an integer >= 1, got {batch_size}")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    sums = []
    try:
        for begin in range(0, len(prompts), batch_size):
            batch = tokenize_responses(
                tokenizer, prompts[begin : begin + batch_size], responses[begin : begin + batch_size], add_eos, max_length
            )
            logits = model(
                input_ids=batch.input_ids.to(device), attention_mask=batch.attention_mask.to(device)
            ).logits  # [B, T, V]
            per_token = token_logprobs(logits, batch.input_ids.to(device))  # [B, T-1]
            mask = batch.response_mask[:, 1:].to(device)  # [B, T-1]
            sums.append((per_token * mask).sum(-1).cpu())
    finally:
        model.train(was_training)
    return torch.cat(sums) if sums else torch.zeros(0)


def _common_prefix_length(a: Sequence[int], b: Sequence[int]) -> int:
    length = 0
    for x, y in zip(a, b):
        if x != y:
            break
        length += 1
    return length
