"""The tiny LDS workload's data and model: preference pairs with structure a random-init model learns in seconds.

Pairs belong to one of ``topics`` topics. A topic has its own prompt words, its own preferred response words
and its own dispreferred ones; a pair asks with three of the topic's prompt words, its ``chosen`` answer uses
preferred words and its ``rejected`` answer dispreferred ones. A share ``flip`` of the *training* pairs has
chosen and rejected swapped (a noisy annotator): those pairs teach the wrong preference, so a correct
attribution must find both the helpful pairs of a query's topic and the harmful flipped ones. Queries are
clean held-out pairs. Every word is one token of a word-level tokenizer (a few dozen tokens in all), so the
model is small and a retrain takes about a second on one core.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from trustattr.preference_data import PreferencePair

__all__ = ["SyntheticTask", "synthetic_model", "synthetic_pairs", "word_tokenizer"]

SPECIAL = {"pad": "<pad>", "eos": "<eos>", "unk": "<unk>"}


@dataclass(frozen=True)
class SyntheticTask:
    """Shape of the synthetic preference task."""

    topics: int = 4
    prompt_words: int = 6  # per topic
    answer_words: int = 4  # preferred and dispreferred words per topic
    answer_length: int = 3
    flip: float = 0.25  # share of training pairs with chosen/rejected swapped

    def vocabulary(self) -> list[str]:
        words = ["ask", "please"]
        for t in range(self.topics):
            words += [f"p{t}_{i}" for i in range(self.prompt_words)]
            words += [f"good{t}_{i}" for i in range(self.answer_words)]
            words += [f"bad{t}_{i}" for i in range(self.answer_words)]
        return words


def word_tokenizer(task: SyntheticTask) -> PreTrainedTokenizerFast:
    """A word-level tokenizer over the task's vocabulary (whitespace split; <pad>, <eos>, <unk> special)."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {token: i for i, token in enumerate([*SPECIAL.values(), *task.vocabulary()])}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token=SPECIAL["unk"]))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=backend, pad_token=SPECIAL["pad"], eos_token=SPECIAL["eos"],
                                   unk_token=SPECIAL["unk"])


def synthetic_pairs(task: SyntheticTask, count: int, seed: int, prefix: str, flip: bool) -> list[PreferencePair]:
    """``count`` pairs, topics in turn; with ``flip`` a seeded share ``task.flip`` of them swapped.

    A pair's ``source`` records its topic and whether it is flipped (``topic2`` / ``topic2-flipped``).
    """
    rng = random.Random(seed)
    pairs = []
    for index in range(count):
        topic = index % task.topics
        prompt = " ".join(["ask", *rng.sample([f"p{topic}_{i}" for i in range(task.prompt_words)], 3)])
        good = " ".join(rng.choices([f"good{topic}_{i}" for i in range(task.answer_words)], k=task.answer_length))
        bad = " ".join(rng.choices([f"bad{topic}_{i}" for i in range(task.answer_words)], k=task.answer_length))
        flipped = flip and rng.random() < task.flip
        chosen, rejected = (bad, good) if flipped else (good, bad)
        source = f"topic{topic}" + ("-flipped" if flipped else "")
        pairs.append(PreferencePair(f"{prefix}-{index}", prompt, chosen, rejected, source))
    return pairs


def synthetic_model(tokenizer: PreTrainedTokenizerFast, seed: int, hidden_size: int = 32,
                    num_layers: int = 2) -> LlamaForCausalLM:
    """A random-init Llama over the word vocabulary, float64, seeded (the global RNG is left as it was)."""
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=2 * hidden_size,
                         num_hidden_layers=num_layers, num_attention_heads=4, num_key_value_heads=4,
                         max_position_embeddings=64, pad_token_id=tokenizer.pad_token_id,
                         eos_token_id=tokenizer.eos_token_id, bos_token_id=tokenizer.eos_token_id,
                         tie_word_embeddings=False, attn_implementation="sdpa")
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        model = LlamaForCausalLM(config).to(torch.float64)
    finally:
        torch.random.set_rng_state(state)
    model.config.name_or_path = f"synthetic-llama-{hidden_size}x{num_layers}-seed{seed}"
    return model.eval()
