"""The compiled ops the engine calls: the single seam between the engine and :mod:`trustattr.ops`.

Every heavy tensor operation of the engine (factored and global projection of per-example gradients,
segment sums, scoring, DataInf) goes through the names below. Each name is bound to the compiled op of
:mod:`trustattr.ops` when that op exists, and to the interim pure-PyTorch version of
:mod:`trustattr.attribution._interim` otherwise (same contract, INTERFACES.md C).
"""

from __future__ import annotations

from trustattr import ops
from trustattr.attribution import _interim

__all__ = [
    "COMPILED",
    "datainf_scores",
    "derive_seed",
    "project",
    "project_factored",
    "project_outer",
    "score",
    "segment_sum",
    "topk_score",
]

_NAMES = ("project_factored", "project_outer", "segment_sum", "score", "topk_score", "datainf_scores", "derive_seed")

# Which of the ops are served by the compiled extension (the others by the interim fallback).
COMPILED = {name: hasattr(ops, name) for name in _NAMES}

project = ops.project
project_factored = getattr(ops, "project_factored", _interim.project_factored)
project_outer = getattr(ops, "project_outer", _interim.project_outer)
segment_sum = getattr(ops, "segment_sum", _interim.segment_sum)
score = getattr(ops, "score", _interim.score)
topk_score = getattr(ops, "topk_score", _interim.topk_score)
datainf_scores = getattr(ops, "datainf_scores", _interim.datainf_scores)
derive_seed = getattr(ops, "derive_seed", _interim.derive_seed)
