"""The linear datamodeling score (Park et al. 2023, TRAK §2.2) and its confidence interval.

For M subsets S_m of the training set and a query q, the method's prediction of the query's measurement
under S_m is the sum of its scores over the subset, ``pred[m, q] = sum_{i in S_m} tau[i, q]``, where ``tau``
is the estimated change of the measurement (here: minus the raw score, whose sign convention is the change of
the query *loss*). The LDS of query q is the Spearman rank correlation over m of ``pred[:, q]`` and the
measured values ``y[:, q]`` of models retrained on S_m; a method's LDS is its mean over queries. The 95%
interval is a percentile bootstrap over queries (the queries are the sampled unit; the subsets are shared).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import spearmanr

__all__ = ["LDSScore", "draw_subsets", "linear_datamodeling_score", "subset_predictions"]


def draw_subsets(num_train: int, num_subsets: int, fraction: float, seed: int) -> np.ndarray:
    """[M, N] bool: M subsets with ``round(fraction N)`` members each, drawn without replacement (seeded)."""
    if not 0 < fraction < 1:
        raise ValueError(f"`fraction` must be in (0, 1), got {fraction}")
    size = int(round(fraction * num_train))
    if not 0 < size < num_train:
        raise ValueError(f"`fraction` {fraction} of {num_train} training pairs leaves an empty or full subset")
    rng = np.random.default_rng(seed)
    masks = np.zeros((num_subsets, num_train), dtype=bool)
    for m in range(num_subsets):
        masks[m, rng.choice(num_train, size=size, replace=False)] = True
    return masks


def subset_predictions(raw: np.ndarray, subsets: np.ndarray) -> np.ndarray:
    """Predicted measurements [M, Q] from raw scores [N, Q] (change of the query loss) and subsets [M, N]."""
    return -(subsets.astype(np.float64) @ raw.astype(np.float64))


@dataclass(frozen=True)
class LDSScore:
    mean: float
    low: float  # 95% bootstrap interval over queries
    high: float
    per_query: np.ndarray  # [Q] Spearman correlation of each query (nan where a side is constant)

    def to_dict(self) -> dict:
        return {"lds": self.mean, "ci95": [self.low, self.high], "per_query": [
            None if np.isnan(v) else float(v) for v in self.per_query]}


def linear_datamodeling_score(predicted: np.ndarray, measured: np.ndarray, seed: int = 0,
                              resamples: int = 2000) -> LDSScore:
    """LDS of predictions [M, Q] against measurements [M, Q] (see the module docstring)."""
    if predicted.shape != measured.shape or predicted.ndim != 2:
        raise ValueError(f"predicted {predicted.shape} and measured {measured.shape} must both be [subsets, queries]")
    per_query = np.full(predicted.shape[1], np.nan)
    for q in range(predicted.shape[1]):
        if np.ptp(predicted[:, q]) > 0 and np.ptp(measured[:, q]) > 0:
            per_query[q] = spearmanr(predicted[:, q], measured[:, q]).statistic
    valid = per_query[~np.isnan(per_query)]
    if valid.size == 0:
        return LDSScore(float("nan"), float("nan"), float("nan"), per_query)
    rng = np.random.default_rng(seed)
    means = rng.choice(valid, size=(resamples, valid.size), replace=True).mean(1)
    low, high = np.percentile(means, [2.5, 97.5])
    return LDSScore(float(valid.mean()), float(low), float(high), per_query)
