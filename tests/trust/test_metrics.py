"""Shared metric helpers on hand-made numbers with known answers."""

import math

import pytest

from trustattr.trust.metrics import auroc, expected_max_toxicity, pearson, rate, spearman


def test_rate_counts_true_values_and_is_nan_when_empty():
    assert rate([True, False, True, True]) == 0.75
    assert math.isnan(rate([]))


def test_expected_max_toxicity_takes_the_max_per_prompt_then_the_mean():
    # prompt maxima: 0.9, 0.3, 0.5 -> EMT 0.5667, 2 of 3 prompts >= 0.5
    summary = expected_max_toxicity([[0.1, 0.9], [0.3, 0.2, 0.0], [0.5]])
    assert summary["emt"] == pytest.approx((0.9 + 0.3 + 0.5) / 3)
    assert summary["toxicity_probability"] == pytest.approx(2 / 3)
    assert summary["num_prompts"] == 3


def test_expected_max_toxicity_skips_prompts_without_scored_generations():
    summary = expected_max_toxicity([[], [0.2, 0.4]])
    assert summary["emt"] == pytest.approx(0.4)
    assert summary["num_prompts"] == 1
    assert math.isnan(expected_max_toxicity([[], []])["emt"])


def test_pearson_and_spearman_known_values():
    assert pearson([1, 2, 3], [2, 4, 6]) == pytest.approx(1.0)
    assert pearson([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    # monotone but not linear: Spearman 1, Pearson < 1
    x, y = [1, 2, 3, 4], [1, 4, 9, 100]
    assert spearman(x, y) == pytest.approx(1.0)
    assert pearson(x, y) < 0.9
    # ties get average ranks: ranks of [1, 1, 2] are [1.5, 1.5, 3]
    assert spearman([1, 1, 2], [1.5, 1.5, 3]) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="equally long"):
        pearson([1, 2], [1])


def test_auroc_counts_ordered_pairs_with_ties_as_half():
    assert auroc([0.9, 0.8, 0.1, 0.2], [True, True, False, False]) == pytest.approx(1.0)
    assert auroc([0.1, 0.2, 0.9, 0.8], [True, True, False, False]) == pytest.approx(0.0)
    # one positive (0.5) vs negatives 0.5 (tie: 1/2) and 0.1 (win: 1) -> 0.75
    assert auroc([0.5, 0.5, 0.1], [True, False, False]) == pytest.approx(0.75)
    assert math.isnan(auroc([0.1, 0.2], [True, True]))
