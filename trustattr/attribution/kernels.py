"""The compiled ops the engine calls (INTERFACES.md C): the single seam between the engine and :mod:`trustattr.ops`.

Every heavy tensor operation of the engine (factored and global projection of per-example gradients,
segment sums, scoring, DataInf) goes through these names, which are the compiled ops of
:mod:`trustattr.ops` (served by the pure-PyTorch reference kernels only if the extension cannot load).
"""

from __future__ import annotations

from trustattr import ops
from trustattr.ops import (
    datainf_scores,
    derive_seed,
    project,
    project_factored,
    project_outer,
    score,
    segment_sum,
    topk_score,
)

__all__ = [
    "datainf_scores",
    "derive_seed",
    "info",
    "project",
    "project_factored",
    "project_outer",
    "score",
    "segment_sum",
    "topk_score",
]


def info() -> dict[str, object]:
    """Whether the compiled kernels serve the ops, and which CPU variant (recorded in summary.json)."""
    return ops.extension_info()
