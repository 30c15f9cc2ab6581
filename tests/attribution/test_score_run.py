"""Scoring runs that used to fail or mislead: an unexpected crash (a clear TrustAttrError, no partial output), a
tracked output layer end to end, and the one-block note of the block methods on the outer projection."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.attribution.test_cli import SMALL, _invoke
from trustattr.attribution import pipeline
from trustattr.attribution.arguments import ScoreArguments
from trustattr.attribution.attributor import Attributor


@pytest.mark.parametrize("out_exists", [False, True])
def test_unexpected_error_is_a_trustattr_error_and_leaves_nothing(tmp_path, monkeypatch, out_exists):
    """An injected crash inside the train-feature pass: a ScoringError naming the phase, the original as its
    cause, and nothing the run created left behind (what was in an existing --out is kept)."""
    out = tmp_path / "out"
    if out_exists:
        out.mkdir()
        (out / "mine.txt").write_text("kept")

    def crash(self, batch):
        raise RuntimeError("The size of tensor a (61) must match the size of tensor b (62)")

    monkeypatch.setattr(Attributor, "batch_features", crash)
    args = ScoreArguments.from_preset("tiny", limit=4, test_limit=2, benchmarks="ethics", out=str(out))
    with pytest.raises(pipeline.ScoringError, match="'train features' phase.*RuntimeError.*61") as info:
        pipeline.score(args, progress=False, log=lambda message: None)
    assert isinstance(info.value.__cause__, RuntimeError)
    if out_exists:
        assert sorted(p.name for p in out.iterdir()) == ["mine.txt"]
    else:
        assert not out.exists()
    result = _invoke(*SMALL, "--out", out)  # the CLI prints it as one line
    assert result.exit_code == 1 and result.stderr.strip().splitlines()[-1].startswith("Error: scoring failed")


def test_tracked_output_layer_end_to_end(tmp_path):
    out = tmp_path / "out"
    result = _invoke(*SMALL, "--out", out, "--modules", "lm_head", "--last-k-blocks", "0")
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["modules"] == ["lm_head"] and summary["feature_dim"] == 8 * 8
    assert np.isfinite(np.load(out / "scores.npz")["raw"]).all()


@pytest.mark.parametrize("method", ["datainf", "whitened_cosine"])
def test_block_methods_on_outer_projection_warn_one_block(tmp_path, method):
    args = ScoreArguments.from_preset("tiny", limit=4, test_limit=2, benchmarks="ethics", projection="outer", k=32,
                                      method=method, out=str(tmp_path / "out"))
    with pytest.warns(UserWarning, match=f"{method} with --projection outer.*ONE block"):
        result = pipeline.score(args, progress=False, log=lambda message: None)
    assert any("ONE block" in note for note in result.summary["notes"])
    assert any("ONE block" in note for note in json.loads((tmp_path / "out" / "summary.json").read_text())["notes"])


def test_factored_projection_has_no_one_block_note(tmp_path):
    args = ScoreArguments.from_preset("tiny", limit=4, test_limit=2, benchmarks="ethics", method="datainf",
                                      out=str(tmp_path / "out"))
    result = pipeline.score(args, progress=False, log=lambda message: None)
    assert result.summary["notes"] == []


@pytest.mark.parametrize("method", ["gradient_dot", "ekfac"])
def test_exact_projection_scores_the_full_per_pair_gradients(tmp_path, method):
    from trustattr.attribution import score as run_score
    from trustattr.attribution.arguments import ScoreArguments

    args = ScoreArguments.from_preset("tiny", limit=6, test_limit=2, benchmarks="ethics", projection="exact",
                                      method=method, out=str(tmp_path / "out"))
    result = run_score(args, progress=False, log=lambda m: None)
    summary = result.summary
    from trustattr.models import tiny_model

    model = tiny_model()
    sizes = dict(model.named_modules())
    want_dim = sum(sizes[name].in_features * sizes[name].out_features for name in summary["modules"])
    assert summary["feature_dim"] == want_dim
    train = np.load(sorted((tmp_path / "out" / "work" / "features" / "final" / "train").glob("shard-*.npy"))[0])
    assert train.shape[1] == want_dim and np.abs(train).max() > 0
    assert np.isfinite(result.raw).all() and np.abs(result.raw).max() > 0
