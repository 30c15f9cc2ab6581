"""`trustattr score` through typer's CliRunner: the tiny preset end to end, resume, mismatch, bad inputs."""

from __future__ import annotations

import dataclasses
import json
import time

import numpy as np
import pytest
import torch
from trustattr.cli.main import app
from typer.testing import CliRunner

from trustattr.attribution import pipeline
from trustattr.attribution.arguments import ScoreArguments
from trustattr.attribution.attributor import Attributor
from trustattr.models import load_tokenizer, tiny_model

SMALL = ["--preset", "tiny", "--limit", "4", "--test-limit", "2", "--benchmarks", "ethics"]
runner = CliRunner()


def _invoke(*args):
    return runner.invoke(app, ["score", *map(str, args)])


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "tiny"
    start = time.perf_counter()
    result = _invoke("--preset", "tiny", "--out", out)
    return out, result, time.perf_counter() - start


def test_tiny_preset_end_to_end(tiny_run):
    out, result, seconds = tiny_run
    assert result.exit_code == 0, result.output
    assert seconds < 120, f"--preset tiny took {seconds:.0f} s (target: 2 minutes)"
    scores = np.load(out / "scores.npz")
    assert scores["raw"].shape == (24, 5) and list(scores["benchmarks"]) == [
        "toxicity", "stereotype", "ethics", "truthfulness", "privacy"]
    assert np.isfinite(scores["raw"]).all() and np.abs(scores["raw"]).max() > 0
    assert np.abs(scores["trust_normalized"]).max() == pytest.approx(1.0)
    np.testing.assert_allclose(scores["trust"], -scores["raw"])  # target side: direction +1 everywhere
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["benchmarks"]) == set(scores["benchmarks"])
    assert len(summary["benchmarks"]["ethics"]["top_helping"]) == 10
    assert "train features" in summary["timings_s"]
    report = (out / "report.md").read_text()
    assert report.count("Top 10 trust-helping") == 5 and report.count("Top 10 trust-harming") == 5
    assert (out / "score_distributions.png").read_bytes()[:4] == b"\x89PNG"
    assert "where the time went" in result.output


def test_rerun_resumes_without_recomputing(tiny_run, monkeypatch):
    out, first, _ = tiny_run

    def fail(*args, **kwargs):
        raise AssertionError("features were recomputed")

    monkeypatch.setattr(Attributor, "batch_features", fail)
    monkeypatch.setattr(pipeline.Workflow, "_train_auto_policy", fail, raising=False)
    before = np.load(out / "scores.npz")["raw"]
    result = _invoke("--preset", "tiny", "--out", out)
    assert result.exit_code == 0, result.output
    np.testing.assert_array_equal(np.load(out / "scores.npz")["raw"], before)


def test_rerun_with_other_arguments_names_the_difference(tiny_run):
    out, _, _ = tiny_run
    result = _invoke("--preset", "tiny", "--out", out, "--k", "5")
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "projection.k" in lines[0], result.stderr
    assert (out / "scores.npz").exists()  # an existing run is never deleted


def test_help_explains_every_option():
    result = runner.invoke(app, ["score", "--help"], terminal_width=200)
    assert result.exit_code == 0
    for f in dataclasses.fields(ScoreArguments):
        assert f"--{f.name.replace('_', '-')}" in result.output, f.name
    assert "--preset" in result.output


def test_cli_builds_the_arguments_the_api_takes(monkeypatch, tmp_path):
    seen = {}

    def fake_score(args, log=print):
        seen["args"] = args

    monkeypatch.setattr(pipeline, "score", fake_score)
    result = _invoke("--preset", "tiny", "--k", "3", "--benchmarks", "ethics,privacy", "--method", "trak",
                     "--out", tmp_path / "o")
    assert result.exit_code == 0, result.output
    assert seen["args"] == ScoreArguments.from_preset("tiny", k=3, benchmarks="ethics,privacy", method="trak",
                                                      out=str(tmp_path / "o"))


def _write(path, lines):
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def _nan_model(tmp_path):
    model = tiny_model()
    with torch.no_grad():
        model.model.norm.weight.fill_(float("nan"))
    model.save_pretrained(tmp_path / "nan-model")
    load_tokenizer("tiny").save_pretrained(tmp_path / "nan-model")
    return tmp_path / "nan-model"


@pytest.mark.parametrize("case", ["missing_field", "empty", "bad_model", "k_zero", "no_modules", "nan_loss"])
def test_bad_inputs_give_one_line_and_no_output(tmp_path, case):
    out = tmp_path / "out"
    extra, expected = {
        "missing_field": (["--train-data", _write(tmp_path / "d.jsonl", [{"prompt": "p", "chosen": "a"}])],
                          "missing field 'rejected'"),
        "empty": (["--train-data", _write(tmp_path / "e.jsonl", [])], "no usable pairs"),
        "bad_model": (["--policy", tmp_path / "no" / "such" / "model"], "does not exist"),
        "k_zero": (["--k", "0"], "`k` must be a positive integer"),
        "no_modules": (["--modules", "no_such_module"], "matches no nn.Linear module"),
        "nan_loss": (["--policy", _nan_model(tmp_path) if case == "nan_loss" else "", "--loss", "sft"],
                     "not finite"),
    }[case]
    result = _invoke(*SMALL, "--out", out, *extra)
    assert result.exit_code != 0
    lines = result.stderr.strip().splitlines()  # (transformers may print its weight-loading bar first)
    errors = [line for line in lines if line.startswith("Error")]
    assert errors == [lines[-1]] and expected in lines[-1], result.output
    assert not out.exists()


@pytest.mark.parametrize("loss", ["sft", "reward"])
def test_other_losses_end_to_end(tmp_path, loss):
    out = tmp_path / "out"
    result = _invoke(*SMALL, "--out", out, "--loss", loss, "--policy", "tiny", "--method", "gradient_cosine")
    assert result.exit_code == 0, result.output
    scores = np.load(out / "scores.npz")
    assert scores["raw"].shape == (4, 1) and np.isfinite(scores["raw"]).all()
    assert np.all(np.abs(scores["raw"]) <= 1.0) and np.abs(scores["raw"]).max() > 0  # cosines
    summary = json.loads((out / "summary.json").read_text())
    assert summary["arguments"]["loss"] == loss and summary["feature_dim"] == len(summary["modules"]) * 8 * 8


def test_trak_uses_the_train_pairs_residuals(tmp_path):
    from trustattr.attribution.methods import FeatureSet, get_method

    def read(store):
        return torch.from_numpy(np.concatenate([np.load(p) for p in sorted(store.glob("shard-*.npy"))])).double()

    out = tmp_path / "out"
    result = _invoke("--preset", "tiny", "--limit", "8", "--test-limit", "3", "--benchmarks", "ethics",
                     "--method", "trak", "--out", out)
    assert result.exit_code == 0, result.output
    final = out / "work" / "features" / "final"
    train, test, residual = read(final / "train"), read(final / "test-ethics"), read(final / "residuals")[:, 0]
    assert ((residual > 0) & (residual < 1)).all()  # sigma(-beta m) of each train pair
    summary = json.loads((out / "summary.json").read_text())
    blocks = [i * 64 for i in range(len(summary["modules"]) + 1)]
    raw = np.load(out / "scores.npz")["raw"][:, 0]
    want = get_method("trak").scores([FeatureSet(train, test, 1.0, blocks, residual)]).numpy()
    np.testing.assert_allclose(raw, want, rtol=1e-6)
    unweighted = get_method("trak").scores([FeatureSet(train, test, 1.0, blocks)]).numpy()
    assert not np.allclose(raw, unweighted, rtol=1e-3)
