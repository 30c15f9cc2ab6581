"""Preference pairs → rows for trl's trainers, cut to a token budget.

Text layout (shared with :mod:`trustattr.train.logprobs` and the attribution engine): a model reads
``prompt + pair.separator + response`` and the trainers append the tokenizer's eos. The separator is
``RESPONSE_SEPARATOR`` (" ") for HH transcripts and "" for the trl formats (their text is used verbatim).
Conversational pairs are handed to trl as messages (trl applies the chat template) and rendered with the same
template for our own tokenization (:func:`trustattr.preference_data.render_pair`); they are not cut here: trl's
DPO collator keeps the first ``max_length`` tokens and so does :func:`trustattr.train.logprobs.tokenize_pairs`.

trl truncates SFT/DPO sequences from the right (which can cut off the whole response of a long multi-turn
prompt) and *drops* reward-model pairs that are too long, so every pair is cut here first: the prompt keeps
its last ``max_prompt_length`` tokens (the end of the conversation), the responses keep their start.
"""

from __future__ import annotations

from dataclasses import replace

from transformers import PreTrainedTokenizerBase

from trustattr.errors import DataError
from trustattr.preference_data import PreferencePair, load_preference_pairs, render_pair
from trustattr.train.config import StageArguments

__all__ = [
    "RESPONSE_SEPARATOR",
    "fit_pair",
    "fit_pairs",
    "load_stage_pairs",
    "preference_rows",
    "prompt_rows",
    "sft_rows",
]

RESPONSE_SEPARATOR = " "
EOS_RESERVE = 1  # the eos token trl appends to every response
RETOKENIZE_MARGIN = 2  # decoded token slices may re-tokenize a little longer


def load_stage_pairs(args: StageArguments, split: str) -> list[PreferencePair]:
    """The train pairs (``train_limit``) or held-out pairs (``eval_limit``) of a stage."""
    limit = args.train_limit if split == "train" else args.eval_limit
    return load_preference_pairs(args.data, split=split, limit=limit, seed=args.seed, eval_fraction=args.eval_fraction)


def fit_pair(
    tokenizer: PreTrainedTokenizerBase, pair: PreferencePair, max_length: int, max_prompt_length: int
) -> PreferencePair:
    """Cut ``pair`` so that prompt + separator + each response + eos fits ``max_length`` tokens.

    A conversational pair is rendered with the tokenizer's chat template and not cut (see the module docstring).
    """
    if getattr(pair, "messages", None) is not None:
        return render_pair(tokenizer, pair)
    separator = getattr(pair, "separator", RESPONSE_SEPARATOR)  # duck-typed pairs (e.g. benchmark pairs): HH layout
    prompt = _keep_last_tokens(tokenizer, pair.prompt, max_prompt_length)
    prompt_tokens = _count(tokenizer, prompt)
    budget = max_length - prompt_tokens - EOS_RESERVE - RETOKENIZE_MARGIN
    chosen = _fit_response(tokenizer, prompt + separator, pair.chosen, budget, max_length)
    rejected = _fit_response(tokenizer, prompt + separator, pair.rejected, budget, max_length)
    return replace(pair, prompt=prompt, chosen=chosen, rejected=rejected)


def fit_pairs(tokenizer: PreTrainedTokenizerBase, pairs: list[PreferencePair], args: StageArguments) -> list[PreferencePair]:
    """:func:`fit_pair` on each pair; pairs whose cut responses became identical carry no preference and go."""
    fitted = [fit_pair(tokenizer, pair, args.max_length, args.max_prompt_length) for pair in pairs]
    return [pair for pair in fitted if pair.chosen.strip() and pair.chosen.strip() != pair.rejected.strip()]


def sft_rows(pairs: list[PreferencePair]) -> list[dict]:
    """trl prompt/completion rows (the chosen response); conversational pairs as messages."""
    if _conversational(pairs):
        return [{"prompt": _messages(p, 0), "completion": _messages(p, 1)} for p in pairs]
    return [{"prompt": p.prompt, "completion": _separator(p) + p.chosen} for p in pairs]


def preference_rows(pairs: list[PreferencePair]) -> list[dict]:
    """trl explicit-prompt preference rows (DPO and reward model); conversational pairs as messages, so that trl
    applies the chat template itself."""
    if _conversational(pairs):
        return [{"prompt": _messages(p, 0), "chosen": _messages(p, 1), "rejected": _messages(p, 2)} for p in pairs]
    return [{"prompt": p.prompt, "chosen": _separator(p) + p.chosen, "rejected": _separator(p) + p.rejected}
            for p in pairs]


def _conversational(pairs: list[PreferencePair]) -> bool:
    kinds = {getattr(p, "messages", None) is not None for p in pairs}
    if len(kinds) > 1:
        raise DataError("the training pairs mix conversational and text rows; trl trains on one kind per dataset")
    return kinds == {True}


def _separator(pair: PreferencePair) -> str:
    return getattr(pair, "separator", RESPONSE_SEPARATOR)


def _messages(pair: PreferencePair, part: int) -> list[dict]:
    return [dict(m) for m in pair.messages[part]]


def prompt_rows(pairs: list[PreferencePair]) -> list[str]:
    """Prompts for rollouts (PPO): the model continues after ``"Assistant:"``."""
    return [p.prompt for p in pairs]


def _count(tokenizer: PreTrainedTokenizerBase, text: str) -> int:
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def _keep_last_tokens(tokenizer: PreTrainedTokenizerBase, text: str, limit: int) -> str:
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if len(ids) <= limit:
        return text
    for keep in range(limit, 0, -1):  # a decoded slice can re-tokenize longer: shrink until it fits
        cut = tokenizer.decode(ids[len(ids) - keep :])
        if _count(tokenizer, cut) <= limit:
            return cut
    return ""


def _fit_response(tokenizer: PreTrainedTokenizerBase, head: str, response: str, budget: int, max_length: int) -> str:
    """``response`` cut so that ``head`` (prompt + separator) + response + eos fits ``max_length``."""
    ids = tokenizer(response, add_special_tokens=False)["input_ids"]
    budget = max(budget, 1)
    text = response
    if len(ids) > budget:
        text = tokenizer.decode(ids[:budget])
    while _count(tokenizer, head + text) + EOS_RESERVE > max_length and budget > 1:
        budget -= 1
        text = tokenizer.decode(ids[:budget])
    return text
