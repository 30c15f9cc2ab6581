"""Summed log-probabilities of responses given prompts, tokenized exactly as trl's DPOTrainer does.

:func:`pair_token_ids` is trl's DPO tokenization of one preference row (``DPOTrainer._prepare_dataset``):
text rows tokenize ``prompt``, ``prompt + separator + chosen + eos`` and ``prompt + separator + rejected + eos``
with the tokenizer's special tokens (eos is appended unless the response already ends with it); conversational
rows tokenize the prompt messages with the generation prompt and the prompt+response conversations with the chat
template (no eos: the template closes the turn). The response tokens start where the tokenized prompt and the
two tokenized sequences stop agreeing (the shorter of the two common prefixes), so a token merging across the
boundary counts as response. The attribution engine (:func:`tokenize_pairs`) and the held-out evaluation use it.

:func:`tokenize_responses` is the older string interface (``prompt + RESPONSE_SEPARATOR + response + eos``, the
HH convention) kept for generated responses (PPO).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from trustattr.preference_data import PreferencePair
from trustattr.train.data import RESPONSE_SEPARATOR

__all__ = [
    "TokenizedResponses",
    "pair_token_ids",
    "sequence_logprobs",
    "side_logprobs",
    "tokenize_pairs",
    "tokenize_responses",
    "token_logprobs",
]


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
    return _pad_rows(tokenizer, rows, starts)


def pair_token_ids(tokenizer: PreTrainedTokenizerBase, pair: PreferencePair) -> tuple[list[int], list[int], int]:
    """``(prompt+chosen ids, prompt+rejected ids, prompt length)`` of one pair, as trl's DPOTrainer tokenizes it."""
    if getattr(pair, "messages", None) is not None:  # conversational: trl's tokenize_fn, chat template with tokenize=True
        prompt_messages, chosen_messages, rejected_messages = ([dict(m) for m in part] for part in pair.messages)

        def template(messages: list[dict], **kwargs) -> list[int]:
            return list(tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True, **kwargs)["input_ids"])

        prompt_ids = template(prompt_messages, add_generation_prompt=True)
        chosen_ids = template(prompt_messages + chosen_messages)
        rejected_ids = template(prompt_messages + rejected_messages)
    else:  # text: trl's add_eos, then tokenizer(text) with its special tokens
        eos = tokenizer.eos_token

        def with_eos(response: str) -> str:
            text = getattr(pair, "separator", RESPONSE_SEPARATOR) + response  # duck-typed pairs: HH layout
            return text if text.endswith(eos) else text + eos

        prompt_ids = tokenizer(pair.prompt)["input_ids"]
        chosen_ids = tokenizer(pair.prompt + with_eos(pair.chosen))["input_ids"]
        rejected_ids = tokenizer(pair.prompt + with_eos(pair.rejected))["input_ids"]
    start = min(_common_prefix_length(prompt_ids, chosen_ids), _common_prefix_length(prompt_ids, rejected_ids))
    return chosen_ids, rejected_ids, start


def tokenize_pairs(
    tokenizer: PreTrainedTokenizerBase,
    pairs: Sequence[PreferencePair],
    sides: Sequence[str] = ("chosen", "rejected"),
    max_length: int | None = None,
) -> TokenizedResponses:
    """Rows ``[side_0 of every pair, side_1 of every pair, ...]`` tokenized by :func:`pair_token_ids`.

    ``max_length`` keeps the first tokens of each row, as trl's DPO collator (``truncation_mode="keep_start"``).
    """
    encoded = [pair_token_ids(tokenizer, pair) for pair in pairs]
    rows, starts = [], []
    for side in sides:
        if side not in ("chosen", "rejected"):
            raise ValueError(f"sides: expected 'chosen' or 'rejected', got {side!r}")
        for chosen_ids, rejected_ids, start in encoded:
            ids = chosen_ids if side == "chosen" else rejected_ids
            rows.append(ids[:max_length] if max_length is not None else ids)
            starts.append(start)
    return _pad_rows(tokenizer, rows, starts)


def _pad_rows(tokenizer: PreTrainedTokenizerBase, rows: list[list[int]], starts: list[int]) -> TokenizedResponses:
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
    batches = (
        tokenize_responses(
            tokenizer, prompts[begin : begin + batch_size], responses[begin : begin + batch_size], add_eos, max_length
        )
        for begin in range(0, len(prompts), batch_size)
    )
    return _summed_logprobs(model, batches)


@torch.no_grad()
def side_logprobs(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    pairs: Sequence[PreferencePair],
    side: str,
    batch_size: int = 8,
    max_length: int | None = None,
) -> torch.Tensor:
    """Summed response log-probs of one side (``"chosen"`` / ``"rejected"``) of each pair, tokenized as trl does
    (:func:`tokenize_pairs`): [N] on the CPU."""
    if batch_size < 1:
        raise ValueError(f"batch_size: expected an integer >= 1, got {batch_size}")
    batches = (
        tokenize_pairs(tokenizer, pairs[begin : begin + batch_size], (side,), max_length)
        for begin in range(0, len(pairs), batch_size)
    )
    return _summed_logprobs(model, batches)


def _summed_logprobs(model: PreTrainedModel, batches: Iterable[TokenizedResponses]) -> torch.Tensor:
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    sums = []
    try:
        for batch in batches:
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
