"""Tokenising preference pairs for the losses exactly as the RLHF pipeline (trustattr.train) trains on them.

Each pair is first cut to the token budget by :func:`trustattr.train.data.fit_pair` (the prompt keeps its last
``max_prompt_length`` tokens, the responses their start; conversational pairs get the chat template), then
tokenized by :func:`trustattr.train.logprobs.tokenize_pairs`: the token ids trl's DPOTrainer builds for the same
row (right-padded; the response tokens are those after the common prefix with the tokenized prompt). Only
response tokens count in the losses.
"""

from __future__ import annotations

from collections.abc import Sequence

from transformers import PreTrainedTokenizerBase

from trustattr.train.data import fit_pair
from trustattr.train.logprobs import TokenizedResponses, tokenize_pairs

__all__ = ["EncodedRows", "encode_pairs"]

EncodedRows = TokenizedResponses  # input_ids [R, T], attention_mask [R, T], response_mask [R, T] bool


def encode_pairs(
    tokenizer: PreTrainedTokenizerBase,
    pairs: Sequence,
    sides: Sequence[str],
    max_length: int,
    max_prompt_length: int,
) -> EncodedRows:
    """Rows ``[side_0 of every pair, side_1 of every pair, ...]`` for ``sides`` in ("chosen", "rejected")."""
    fitted = [fit_pair(tokenizer, pair, max_length, max_prompt_length) for pair in pairs]
    return tokenize_pairs(tokenizer, fitted, sides, max_length=max_length)
