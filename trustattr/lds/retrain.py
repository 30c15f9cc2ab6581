"""Train with the workload's DPO recipe on a subset, and measure every query's DPO margin: the one place
where "retrain on a subset and measure" happens (the LDS retrains, the full-data runs the methods attribute).

Pairs are tokenized once (:class:`EncodedPairs`); a run shuffles its subset with ``random.Random(seed)``
each epoch and takes AdamW steps on the mean DPO loss of each batch, with the reference log-probs of the
start model. The measurement is the DPO implicit-reward margin of each query pair,
``(log pi(y_w) - log ref(y_w)) - (log pi(y_l) - log ref(y_l))``, a continuous value.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

import torch
from torch import nn

from trustattr.attribution.attributor import reference_logprobs
from trustattr.attribution.losses import LossBatch, MarginLoss
from trustattr.lds.workload import Workload

__all__ = ["EncodedPairs", "measure_margins", "train_on_subset"]


class EncodedPairs:
    """Pairs tokenized once: ``batch(index)`` gives the LossBatch of those pairs, padding trimmed.

    ``reference`` [N, 2] (the start model's log-probs, set by :meth:`with_reference`) goes into every batch.
    """

    def __init__(self, workload: Workload, pairs: Sequence) -> None:
        self.loss = MarginLoss(workload.max_length, workload.max_prompt_length, workload.recipe.beta)
        self.pairs, self.tokenizer = list(pairs), workload.tokenizer
        self.all = self.loss.encode(workload.tokenizer, self.pairs)
        self.num_pairs = len(pairs)
        self.reference: torch.Tensor | None = None

    def with_reference(self, model: nn.Module) -> EncodedPairs:
        """Sets the reference log-probs to ``model``'s (the start model) and returns self."""
        self.reference = reference_logprobs(model, self.tokenizer, self.loss, self.pairs, batch_size=32)
        return self

    def batch(self, index: Sequence[int], reference: torch.Tensor | None = None) -> LossBatch:
        p = self.num_pairs
        rows_index = torch.tensor([*index, *(i + p for i in index)], dtype=torch.long)
        rows = self.all.rows  # [2N, T]
        width = int(rows.attention_mask[rows_index].sum(1).max())
        picked = type(rows)(rows.input_ids[rows_index, :width], rows.attention_mask[rows_index, :width],
                            rows.response_mask[rows_index, :width])
        ref = reference if reference is not None else (
            None if self.reference is None else self.reference[list(index)])
        return LossBatch([self.all.ids[i] for i in index], picked, torch.arange(len(index)).repeat(2), ref)


def measure_margins(model: nn.Module, encoded: EncodedPairs, batch_size: int = 32) -> torch.Tensor:
    """DPO margin of every pair of ``encoded`` (which carries the reference log-probs) -> [Q] float64."""
    model.eval()
    out = torch.zeros(encoded.num_pairs, dtype=torch.float64)
    with torch.no_grad():
        for start in range(0, encoded.num_pairs, batch_size):
            index = list(range(start, min(start + batch_size, encoded.num_pairs)))
            out[index] = encoded.loss.margins(model, encoded.batch(index)).to(torch.float64)
    return out


def train_on_subset(workload: Workload, encoded: EncodedPairs, subset: Sequence[int], seed: int,
                    on_epoch: Callable[[int, nn.Module], None] | None = None) -> nn.Module:
    """A fresh copy of the start model trained with the recipe on the pairs ``subset`` of ``encoded``."""
    recipe = workload.recipe
    model = workload.fresh_model()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=recipe.learning_rate, weight_decay=0.0)
    order = list(subset)
    rng = random.Random(seed)
    model.train()
    for epoch in range(recipe.epochs):
        rng.shuffle(order)
        for start in range(0, len(order), recipe.batch_size):
            batch = encoded.batch(order[start : start + recipe.batch_size])
            margins = encoded.loss.margins(model, batch)
            loss = -torch.nn.functional.logsigmoid(recipe.beta * margins).mean()  # DPO
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        if on_epoch is not None:
            on_epoch(epoch, model)
    return model.eval()
