"""An LDS workload: training pairs, query pairs, a start model and the DPO recipe every retrain follows.

:func:`tiny_workload` is the shipped synthetic task (seconds per retrain); :func:`pairs_workload` takes the
user's own pairs and queries (or the shipped HH pairs and the trust benchmarks' target pairs, the smol
preset) with a causal LM trained by LoRA-DPO. Retraining (:mod:`trustattr.lds.retrain`) and attribution
(:mod:`trustattr.lds.attribute`) read everything they need from here, so "retrain on a subset and measure"
exists once.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from trustattr.lds.synthetic import SyntheticTask, synthetic_model, synthetic_pairs, word_tokenizer
from trustattr.preference_data import PreferencePair

__all__ = ["Recipe", "Workload", "pairs_workload", "tiny_workload"]


@dataclass(frozen=True)
class Recipe:
    """How every model of the benchmark is trained from the start model (the full-data runs and each retrain)."""

    epochs: int = 4
    batch_size: int = 8
    learning_rate: float = 2e-3
    beta: float = 0.5
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"`{name}` must be a positive integer, got {getattr(self, name)!r}")
        for name in ("learning_rate", "beta"):
            if not getattr(self, name) > 0:
                raise ValueError(f"`{name}` must be > 0, got {getattr(self, name)!r}")


@dataclass
class Workload:
    """Everything that defines the counterfactual experiment (and nothing about the methods)."""

    name: str
    tokenizer: object
    train_pairs: list[PreferencePair]
    queries: list[PreferencePair]
    recipe: Recipe
    start: nn.Module  # the model every run starts from (also the DPO reference); never trained in place
    make_trainable: Callable[[nn.Module], nn.Module] = field(default=lambda model: model)
    max_length: int = 32
    max_prompt_length: int = 16
    modules: str | None = None  # tracked-module pattern (see select_modules)
    last_k_blocks: int = 0
    describe_start: str = ""

    def fresh_model(self) -> nn.Module:
        """A trainable copy of the start model (the start model itself is left untouched)."""
        return self.make_trainable(copy.deepcopy(self.start))

    def identity(self) -> dict:
        """What determines every retrain's result (the cache key of retrains)."""
        digest = hashlib.sha1()
        for p in [*self.train_pairs, *self.queries]:
            digest.update(f"{p.id}\x00{p.prompt}\x00{p.chosen}\x00{p.rejected}\x01".encode())
        return {"workload": self.name, "start": self.describe_start, "pairs_sha1": digest.hexdigest(),
                "num_train": len(self.train_pairs), "num_queries": len(self.queries), "recipe": asdict(self.recipe),
                "max_length": self.max_length, "max_prompt_length": self.max_prompt_length}

    def key(self) -> str:
        return hashlib.sha1(json.dumps(self.identity(), sort_keys=True).encode()).hexdigest()[:16]


def tiny_workload(num_train: int = 96, num_queries: int = 32, seed: int = 0, recipe: Recipe | None = None,
                  task: SyntheticTask | None = None) -> Workload:
    """The synthetic preference task (:mod:`trustattr.lds.synthetic`) on a random-init float64 Llama."""
    task = task or SyntheticTask()
    tokenizer = word_tokenizer(task)
    start = synthetic_model(tokenizer, seed)
    return Workload(
        name="tiny", tokenizer=tokenizer,
        train_pairs=synthetic_pairs(task, num_train, seed, "train", flip=True),
        queries=synthetic_pairs(task, num_queries, seed + 10_000, "query", flip=False),
        recipe=recipe or Recipe(), start=start, describe_start=f"{start.config.name_or_path} {asdict(task)}",
    )


def _lora(last_k_blocks: int, seed: int) -> Callable[[nn.Module], nn.Module]:
    def make(model: nn.Module) -> nn.Module:
        from trustattr.attribution.default_policy import with_lora

        return with_lora(model, last_k_blocks, seed)

    return make


def pairs_workload(name: str, model: str, train_pairs: list[PreferencePair], queries: list[PreferencePair],
                   recipe: Recipe, *, last_k_blocks: int, max_length: int, max_prompt_length: int,
                   dtype: torch.dtype = torch.float32) -> Workload:
    """A causal LM (``smol``, ``tiny``, a path or a hub name) trained by LoRA-DPO on the last blocks."""
    from trustattr.attribution.loading import fingerprint, load_causal_lm, load_tokenizer

    start = load_causal_lm(model, dtype)
    return Workload(
        name=name, tokenizer=load_tokenizer(model), train_pairs=train_pairs, queries=queries, recipe=recipe,
        start=start, make_trainable=_lora(last_k_blocks, recipe.seed), max_length=max_length,
        max_prompt_length=max_prompt_length, last_k_blocks=last_k_blocks,
        describe_start=f"{model} {fingerprint(start)} lora-last-{last_k_blocks}",
    )
