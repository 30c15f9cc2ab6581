"""Attributor: capture -> projector -> store for one model, one loss and one list of preference pairs.

:meth:`Attributor.features` returns the projected per-pair gradients [N, dim] of a list of pairs;
:meth:`Attributor.fill_store` writes them shard by shard into a :class:`FeatureStore` (resuming from the
shards already there). Scoring is done by :mod:`trustattr.attribution.methods` on the stored features.
Features do not depend on the batch size: every pair's rows are padded and masked so that padding
contributes nothing, and each pair's loss is its own.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Sequence

import numpy as np
import torch
from torch import nn
from transformers import PreTrainedTokenizerBase

from trustattr.attribution.capture import GradientCapture
from trustattr.attribution.losses import LossBatch, PairLoss, causal_lm, sequence_logprobs
from trustattr.attribution.projector import Projector
from trustattr.attribution.store import FeatureStore
from trustattr.errors import TrustAttrError

__all__ = ["Attributor", "NonFiniteLossError", "TIED_HEAD_NOTE", "reference_logprobs", "tracked_tied_head"]

TIED_HEAD_NOTE = (
    "the tracked output layer '{name}' shares its weight with the input embeddings (tied): its features are the "
    "gradient of the output use only (the logits), not of the shared weight, whose gradient also has the "
    "embedding-lookup part"
)

Progress = Callable[[int], None]  # called with the number of pairs just finished


class NonFiniteLossError(TrustAttrError):
    """A loss that is NaN or infinite for some pairs."""


def _batches(items: Sequence, size: int) -> Iterable[Sequence]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def length_batches(
    tokenizer: PreTrainedTokenizerBase, loss: PairLoss, pairs: Sequence, batch_size: int
) -> list[list[int]]:
    """Batches of pair indices with similar token lengths (less padding), a deterministic function of the pairs.

    Results do not depend on how pairs are batched, so sorting by length only saves the compute spent on pads.
    """
    lengths: list[int] = []
    for chunk in _batches(pairs, 64):
        per_row = loss.encode(tokenizer, chunk).rows.attention_mask.sum(1)  # [sides * P], side-major
        lengths += per_row.view(-1, len(chunk)).max(0).values.tolist()  # [P] longest row of each pair
    order = sorted(range(len(pairs)), key=lambda i: (lengths[i], i))
    return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]


class _EvalMode:
    """Puts a module in eval mode for a block and restores its previous mode (observing, never changing it)."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model

    def __enter__(self) -> None:
        self.modes = {m: m.training for m in self.model.modules()}
        self.model.eval()

    def __exit__(self, *exc_info: object) -> None:
        for module, mode in self.modes.items():
            module.training = mode


def reference_logprobs(
    model: nn.Module, tokenizer: PreTrainedTokenizerBase, loss: PairLoss, pairs: Sequence, batch_size: int = 8,
    progress: Progress | None = None,
) -> torch.Tensor:
    """Summed response-token log-probs of (chosen, rejected) under ``model`` -> [N, 2] float64."""
    out = torch.zeros(len(pairs), 2, dtype=torch.float64)
    with _EvalMode(model), torch.no_grad():
        for index in length_batches(tokenizer, loss, pairs, batch_size):
            batch = loss.encode(tokenizer, [pairs[i] for i in index])
            logps = sequence_logprobs(model, batch.rows).to(torch.float64)  # [2P]
            p = len(index)
            out[index] = torch.stack([logps[:p], logps[p:]], dim=1)
            if progress:
                progress(p)
    return out


def tracked_tied_head(model: nn.Module, modules: dict[str, nn.Module]) -> str | None:
    """Name of the tracked output layer when its weight is tied to the input embeddings, else None."""
    lm = causal_lm(model)
    if not (hasattr(lm, "get_output_embeddings") and hasattr(lm, "get_input_embeddings")):
        return None
    head, embed = lm.get_output_embeddings(), lm.get_input_embeddings()
    if head is None or embed is None or getattr(head, "weight", None) is not getattr(embed, "weight", None):
        return None
    return next((name for name, m in modules.items() if m is head), None)


class Attributor:
    """Per-pair projected gradients of ``loss`` w.r.t. the tracked ``modules`` of ``model``."""

    def __init__(
        self,
        model: nn.Module,
        tokenizer: PreTrainedTokenizerBase,
        loss: PairLoss,
        modules: dict[str, nn.Module],
        projector: Projector,
        batch_size: int = 8,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"`batch_size` must be >= 1, got {batch_size}")
        self.model, self.tokenizer, self.loss = model, tokenizer, loss
        self.modules, self.projector, self.batch_size = modules, projector, batch_size
        head = causal_lm(model).get_output_embeddings() if hasattr(causal_lm(model), "get_output_embeddings") else None
        loss.full_logits = head is not None and any(m is head for m in modules.values())
        tied = tracked_tied_head(model, modules)
        if tied is not None:
            warnings.warn(TIED_HEAD_NOTE.format(name=tied), UserWarning, stacklevel=2)
        self.dtype = next(model.parameters()).dtype

    def batch_features(self, batch: LossBatch) -> torch.Tensor:
        """Features [P, dim] of one encoded batch."""
        self.projector.start(batch.rows.attention_mask, batch.segments, batch.num_pairs, self.dtype)
        with _EvalMode(self.model), torch.enable_grad(), GradientCapture(self.modules, self.projector.sink) as capture:
            losses = self.loss.losses(self.model, batch)  # [P]
            bad = ~torch.isfinite(losses)
            if bad.any():
                ids = [batch.ids[i] for i in bad.nonzero()[:, 0].tolist()]
                raise NonFiniteLossError(
                    f"the {self.loss.name} loss is not finite (NaN or inf) for pairs {', '.join(ids[:5])}"
                )
            capture.backward(losses.sum())
        return self.projector.finish()

    def features(self, pairs: Sequence, reference: torch.Tensor | None = None,
                 progress: Progress | None = None) -> torch.Tensor:
        """Features [N, dim] of ``pairs``; ``reference`` [N, 2] are the reference log-probs (dpo)."""
        out: torch.Tensor | None = None
        for index in length_batches(self.tokenizer, self.loss, pairs, self.batch_size):
            ref = None if reference is None else reference[index]
            feats = self.batch_features(self.loss.encode(self.tokenizer, [pairs[i] for i in index], ref))  # [P, dim]
            if out is None:
                out = torch.zeros(len(pairs), feats.shape[1], dtype=feats.dtype)
            out[index] = feats
            if progress:
                progress(len(index))
        return out if out is not None else torch.zeros(0, self.projector.dim)

    def pair_losses(self, pairs: Sequence, reference: torch.Tensor | None = None) -> torch.Tensor:
        """Per-pair losses [N] float64 (forward only)."""
        out = torch.zeros(len(pairs), dtype=torch.float64)
        with _EvalMode(self.model), torch.no_grad():
            for index in length_batches(self.tokenizer, self.loss, pairs, self.batch_size):
                ref = None if reference is None else reference[index]
                out[index] = self.loss.losses(self.model, self.loss.encode(
                    self.tokenizer, [pairs[i] for i in index], ref)).to(torch.float64)
        return out

    def fill_store(self, store: FeatureStore, pairs: Sequence, shards: Iterable[int] | None = None,
                   reference: torch.Tensor | None = None, progress: Progress | None = None) -> list[int]:
        """Compute and write the missing shards among ``shards`` (default all); returns the shards written."""
        if len(pairs) != store.num_rows:
            raise ValueError(f"the store holds {store.num_rows} rows but {len(pairs)} pairs were given")
        written = []
        for shard in store.missing(shards):
            rows = store.shard_rows(shard)
            ref = None if reference is None else reference[rows.start : rows.stop]
            feats = self.features(pairs[rows.start : rows.stop], ref, progress)
            store.write_shard(shard, feats.numpy().astype(np.float32))
            written.append(shard)
        return written
