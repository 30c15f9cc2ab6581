"""Tokenising (prompt, response) rows for the losses: right-padded ids, attention mask, response-token mask.

Convention (trustattr.preference_data): the model sees ``prompt + " " + response``; the response ends with EOS.
Prompts longer than ``max_prompt_length`` tokens keep their last tokens; responses are cut so the row fits in
``max_length`` tokens. Only response tokens count in the losses (``response_mask``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from transformers import PreTrainedTokenizerBase

__all__ = ["EncodedRows", "encode_rows"]


@dataclass(frozen=True)
class EncodedRows:
    input_ids: torch.Tensor  # [R, T] int64, right-padded
    attention_mask: torch.Tensor  # [R, T] int64
    response_mask: torch.Tensor  # [R, T] bool: the response tokens (their log-probs are the sequence log-prob)

    @property
    def num_tokens(self) -> int:
        return int(self.attention_mask.sum())


def _token_ids(tokenizer: PreTrainedTokenizerBase, texts: Sequence[str]) -> list[list[int]]:
    return tokenizer(list(texts), add_special_tokens=False)["input_ids"]


def encode_rows(
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    responses: Sequence[str],
    max_length: int,
    max_prompt_length: int,
) -> EncodedRows:
    """Encode rows ``prompt + " " + response + EOS``; see the module docstring for truncation."""
    prompt_ids = _token_ids(tokenizer, prompts)
    response_ids = _token_ids(tokenizer, [" " + r for r in responses])
    eos = tokenizer.eos_token_id
    rows: list[tuple[list[int], list[int]]] = []
    for p, r in zip(prompt_ids, response_ids):
        p = p[-max_prompt_length:]
        r = (r + [eos])[: max_length - len(p)]
        rows.append((p, r))
    width = max(len(p) + len(r) for p, r in rows)
    n = len(rows)
    input_ids = torch.full((n, width), tokenizer.pad_token_id, dtype=torch.int64)
    attention = torch.zeros(n, width, dtype=torch.int64)
    response = torch.zeros(n, width, dtype=torch.bool)
    for i, (p, r) in enumerate(rows):
        length = len(p) + len(r)
        input_ids[i, :length] = torch.tensor(p + r, dtype=torch.int64)
        attention[i, :length] = 1
        response[i, len(p) : length] = True
    return EncodedRows(input_ids, attention, response)
