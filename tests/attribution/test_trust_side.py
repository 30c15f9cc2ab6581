"""Test side: target pairs from the benchmarks, paper pseudo pairs and the trust direction from before/after metrics."""

from __future__ import annotations

import json

import numpy as np
import pytest

from trustattr.attribution import trust_side
from trustattr.attribution.arguments import ScoreArguments
from trustattr.attribution.pipeline import score
from trustattr.attribution.trust_side import metric_direction, target_test_pairs


def _summary(value, higher_is_better):
    return {"headline": {"metric": "m", "value": value, "higher_is_better": higher_is_better}}


@pytest.mark.parametrize("before, after, hib, expected", [
    (0.5, 0.7, True, 1), (0.5, 0.7, False, -1), (0.7, 0.5, False, 1), (0.5, 0.5, True, 0), (None, 0.5, True, 0)])
def test_metric_direction(before, after, hib, expected):
    assert metric_direction(_summary(before, hib), _summary(after, hib)) == expected


def test_target_pairs_are_capped_and_mix_pools():
    pairs = target_test_pairs("toxicity", 6, seed=0)
    assert len(pairs) == 6 and len({p.id for p in pairs}) == 6
    assert all(p.prompt.startswith("Human:") and p.chosen != p.rejected for p in pairs)


def _fake_evaluate(values):
    """An evaluate() that writes outputs whose generations depend on the model, and a headline per stage."""

    def evaluate(model, tokenizer, *, out_dir, benchmarks, limit, seed, batch_size, model_name, progress, **kw):
        for name in benchmarks:
            d = out_dir / name
            d.mkdir(parents=True, exist_ok=True)
            rows = [{"benchmark": name, "prompt_id": f"q{i}", "sample": 0, "prompt": f"Question {i}",
                     "plain_prompt": f"Question {i} about {name}?", "generation": f"{model_name} answer {i}"}
                    for i in range(limit)]
            (d / "outputs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
            (d / "metrics.json").write_text(json.dumps(_summary(values[name][model_name], True)))
        return {}

    return evaluate


def test_paper_side_pairs_and_direction_flip_the_trust_sign(tmp_path, monkeypatch):
    values = {"ethics": {"before": 0.2, "after": 0.6}, "privacy": {"before": 0.6, "after": 0.2}}
    monkeypatch.setattr(trust_side, "evaluate", _fake_evaluate(values))
    args = ScoreArguments.from_preset("tiny", test_side="paper", benchmarks="ethics,privacy", test_limit=3, limit=6,
                                      out=str(tmp_path / "out"))
    result = score(args, progress=False, log=lambda m: None)
    assert result.directions == {"ethics": 1, "privacy": -1}
    np.testing.assert_array_equal(result.trust[:, 0], -result.raw[:, 0])
    np.testing.assert_array_equal(result.trust[:, 1], result.raw[:, 1])
    summary = result.summary["benchmarks"]
    assert summary["ethics"]["num_test_pairs"] == 3 and summary["privacy"]["direction"] == -1
    assert np.abs(result.raw).max() > 0
