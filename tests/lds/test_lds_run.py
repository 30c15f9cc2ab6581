"""trustattr lds end to end on a small tiny workload: outputs, the ranking signal, resume, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from trustattr.cli.main import app
from trustattr.lds.arguments import LDSArguments
from trustattr.lds.run import run_lds

SMALL = {"num_train": 32, "num_queries": 8, "num_subsets": 8, "ensemble": 2, "epochs": 2, "k": 4,
         "methods": "gradient_dot,trak,tracin,ekfac", "damping": "0.01,1"}


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("lds")
    return run_lds(LDSArguments.from_preset("tiny", out=str(out), **SMALL), log=lambda m: None)


def test_outputs_name_every_method_on_both_feature_kinds(small_run):
    labels = {(r["label"], r["features"]) for r in small_run.rows}
    want = {"gradient_dot", "tracin", "trak (damping 0.01)", "trak (damping 1)", "trak (ensemble of 2) (damping 0.01)",
            "trak (ensemble of 2) (damping 1)", "ekfac (damping 0.01)", "ekfac (damping 1)"}  # the sweep: curvatures only
    assert labels == {(m, kind) for m in want for kind in ("factored", "exact")}
    payload = json.loads((small_run.out / "lds.json").read_text())
    assert payload["best"]["lds"] == max(r["lds"] for r in small_run.rows)
    assert "| method | features |" in (small_run.out / "lds.md").read_text()
    assert (small_run.out / "lds.png").read_bytes()[:4] == b"\x89PNG"
    by_label = {(r["label"], r["features"]): r for r in small_run.rows}
    assert by_label[("trak (damping 0.01)", "exact")]["lds"] != by_label[("trak (damping 1)", "exact")]["lds"]
    for r in small_run.rows:
        assert -1 <= r["ci95"][0] <= r["lds"] <= r["ci95"][1] <= 1


def test_retrained_margins_vary_and_attribution_beats_chance(small_run):
    assert small_run.measured.shape == (8, 8) and small_run.measured.std(0).min() > 0  # every query moves
    dot = next(r for r in small_run.rows if r["label"] == "gradient_dot" and r["features"] == "exact")
    assert dot["lds"] > 0.2  # the topic/flip structure is visible to the simplest method


def test_rerun_resumes_the_cached_retrains(small_run):
    logged = []
    again = run_lds(LDSArguments.from_preset("tiny", out=str(small_run.out), **SMALL), log=logged.append)
    np.testing.assert_array_equal(again.measured, small_run.measured)
    retrain_phase = [line for line in logged if line.startswith("[retrains]")]
    assert retrain_phase and float(retrain_phase[0].split()[1]) < 1.0  # nothing retrained


def test_cli_refuses_bad_arguments_with_one_line():
    result = CliRunner().invoke(app, ["lds", "--fraction", "1.5"])
    assert result.exit_code == 1 and "`fraction` must be in (0, 1), got 1.5" in result.output
    result = CliRunner().invoke(app, ["lds", "--methods", "gradient_dot,less"])
    assert result.exit_code == 1 and "`methods` must be among" in result.output


def test_custom_workload_trains_lora_on_shipped_pairs_and_measures_trust_queries(tmp_path):
    args = LDSArguments.from_preset("custom", model="tiny", train_data="hh", queries="trust", num_train=8,
                                    num_queries=5, num_subsets=8, ensemble=1, epochs=1, last_k_blocks=1, k=4,
                                    max_length=48, max_prompt_length=24, methods="gradient_dot", exact=False,
                                    out=str(tmp_path))
    result = run_lds(args, log=lambda m: None)
    payload = json.loads((tmp_path / "lds.json").read_text())
    assert payload["workload"]["num_train"] == 8 and payload["workload"]["num_queries"] == 5
    assert "lora-last-1" in payload["workload"]["start"]  # LoRA on the last block, the base never trained
    assert result.measured.shape == (8, 5) and np.isfinite(result.measured).all()
    assert result.measured.std(0).max() > 0
