"""The LDS code against cases with a known answer: ridge regression, where exact influence is closed-form."""

from __future__ import annotations

import numpy as np
import pytest

from trustattr.lds.metrics import draw_subsets, linear_datamodeling_score, subset_predictions


def _ridge(x, y, lam):
    return np.linalg.solve(x.T @ x + lam * np.eye(x.shape[1]), x.T @ y)


def test_exact_influence_of_ridge_regression_reaches_lds_above_0_9_on_leave_many_out_retrains():
    rng = np.random.default_rng(0)
    n, d, q, lam = 200, 5, 20, 1.0
    w = rng.normal(size=d)
    x = rng.normal(size=(n, d))
    y = x @ w + rng.normal(size=n)
    queries = rng.normal(size=(q, d))
    subsets = draw_subsets(n, 64, 0.5, seed=1)
    # retrain on every subset (closed form) and measure each query's prediction
    measured = np.stack([queries @ _ridge(x[s], y[s], lam) for s in subsets])  # [M, Q]
    # exact influence at the full-data optimum: loss_i = (x_i theta - y_i)^2 / 2, H = X^T X + lam I;
    # the query "loss" is -f_q = -x_q theta, so raw[i, q] = -grad(-f_q)^T H^-1 grad loss_i = x_q^T H^-1 x_i r_i
    theta = _ridge(x, y, lam)
    residual = x @ theta - y
    h_inv = np.linalg.inv(x.T @ x + lam * np.eye(d))
    raw = (x * residual[:, None]) @ h_inv @ queries.T  # [N, Q]: estimated change of -f_q when i is up-weighted
    score = linear_datamodeling_score(subset_predictions(raw, subsets), measured)
    assert score.mean >= 0.9 and score.low <= score.mean <= score.high
    # a method that ignores the data scores about zero, and one with the wrong sign about -LDS
    noise = linear_datamodeling_score(subset_predictions(rng.normal(size=raw.shape), subsets), measured)
    flipped = linear_datamodeling_score(subset_predictions(-raw, subsets), measured)
    assert abs(noise.mean) < 0.2 and flipped.mean == pytest.approx(-score.mean)


def test_subsets_are_seeded_and_of_the_requested_size():
    a, b = draw_subsets(10, 5, 0.3, seed=3), draw_subsets(10, 5, 0.3, seed=3)
    assert (a == b).all() and (a.sum(1) == 3).all() and not (a == draw_subsets(10, 5, 0.3, seed=4)).all()
    with pytest.raises(ValueError, match="`fraction`"):
        draw_subsets(10, 5, 1.0, seed=0)


def test_per_query_correlation_is_spearman_and_constant_queries_are_left_out():
    measured = np.array([[1.0, 5.0], [2.0, 5.0], [3.0, 5.0], [4.0, 5.0]])
    predicted = np.array([[10.0, 1.0], [20.0, 2.0], [40.0, 3.0], [30.0, 4.0]])
    score = linear_datamodeling_score(predicted, measured)
    assert score.per_query[0] == pytest.approx(0.8) and np.isnan(score.per_query[1])
    assert score.mean == pytest.approx(0.8)
