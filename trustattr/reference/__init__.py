"""Pure-PyTorch oracles for every compiled op.

They re-implement the counter-based generator of ``csrc/sketch_rng.h`` with
int64 tensor arithmetic (wrapping multiplies, masked logical shifts), so
:func:`random_matrix` here equals the compiled ``random_matrix`` bit for bit.
Tests compare every kernel against these functions in float64; when the
compiled extension cannot be loaded, :mod:`trustattr.ops` serves these
functions as the ops' implementations instead.

The matrix generation is chunked over features, so the fallback never holds
more than ``_FEATURE_CHUNK x k`` entries of R at a time.

By topic: :mod:`.rng` (the generator), :mod:`.projection` (random_matrix, project,
project_t), :mod:`.gradients` (project_factored, project_outer, segment_sum) and
:mod:`.scoring` (score, topk_score, datainf_scores). Every oracle is importable from here.
"""

from __future__ import annotations

from trustattr.reference.gradients import project_factored, project_outer, segment_sum
from trustattr.reference.projection import project, project_t, random_matrix
from trustattr.reference.rng import (
    KINDS,
    derive_seed,
    gaussian_table,
    row_keys,
    seed_key,
)
from trustattr.reference.scoring import (
    datainf_scores,
    datainf_scores_bruteforce,
    score,
    topk_score,
)

__all__ = [
    "KINDS",
    "datainf_scores",
    "datainf_scores_bruteforce",
    "derive_seed",
    "gaussian_table",
    "project",
    "project_factored",
    "project_outer",
    "project_t",
    "random_matrix",
    "row_keys",
    "score",
    "seed_key",
    "segment_sum",
    "topk_score",
]
