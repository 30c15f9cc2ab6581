"""`trustattr train` and `trustattr run` through the CLI (CliRunner), including the tiny end-to-end run."""

from __future__ import annotations

import json
import time

import pytest
from typer.testing import CliRunner

from trustattr.cli.main import app
from trustattr.train.pipeline import GENERATIVE_STAGES

runner = CliRunner()


def test_train_sft_runs_then_skips(tmp_path):
    out = tmp_path / "sft"
    options = ["train", "sft", "--out", str(out), "--max-steps", "1", "--train-limit", "4", "--eval-limit", "0",
               "--max-length", "40", "--max-prompt-length", "24"]
    first = runner.invoke(app, options)
    assert first.exit_code == 0, first.output
    assert "sft: done in" in first.output and (out / "model" / "config.json").exists()
    saved = json.loads((out / "arguments.json").read_text())["arguments"]
    assert saved["max_steps"] == 1 and saved["train_limit"] == 4 and saved["learning_rate"] == 1e-3  # tiny preset
    second = runner.invoke(app, options)
    assert second.exit_code == 0 and "already complete, skipped" in second.output


def test_optional_integers_accept_none(tmp_path):
    from trustattr.cli.train import stage_arguments

    args = stage_arguments("dpo", "tiny", {"train_limit": "all", "beta": 0.2, "lora": True, "model": None})
    assert args.train_limit is None and args.beta == 0.2 and args.lora and args.model == "tiny"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["train", "sft", "--learning-rate", "-1"], "Error: learning_rate: expected a number > 0, got -1.0"),
        (["train", "dpo", "--preset", "huge"], "Error: preset: expected one of tiny, smol, got 'huge'"),
        (["train", "ppo"], "Error: reward_model: expected a reward-model directory"),
        (["run", "--preset", "huge"], "Error: preset: expected one of tiny, smol, got 'huge'"),
    ],
)
def test_bad_arguments_end_with_one_line(tmp_path, options, message):
    result = runner.invoke(app, [*options, "--out", str(tmp_path / "x")])
    assert result.exit_code == 1
    assert message in result.output
    assert "Traceback" not in result.output


def test_help_comes_from_the_dataclass_metadata():
    result = runner.invoke(app, ["train", "dpo", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "DPO beta: strength of the implicit KL to the reference" in result.output
    assert "(tiny preset: 0.1)" in result.output


@pytest.mark.slow
def test_run_tiny_end_to_end_then_resume(tmp_path):
    """The issue's target: `trustattr run --preset tiny` (all stages, five benchmarks after each), then a rerun."""
    out = tmp_path / "run"
    start = time.perf_counter()
    result = runner.invoke(app, ["run", "--preset", "tiny", "--out", str(out)])
    elapsed = time.perf_counter() - start
    assert result.exit_code == 0, result.output
    status = json.loads((out / "run.json").read_text())
    assert all(record["status"] == "complete" for record in status["stages"].values())
    assert len(status["stages"]) == 12  # 5 model stages, 4 evaluations, 3 attribution scores
    for stage in GENERATIVE_STAGES:
        results = json.loads((out / "eval" / stage / "results.json").read_text())
        assert results, stage
    for stage in ("sft", "dpo", "rm", "ppo"):
        assert (out / "stages" / stage / "model" / "config.json").exists()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["training"]["dpo"]["before"]["implicit_reward_accuracy"] == 0.5
    assert set(summary["trust"]) == set(GENERATIVE_STAGES)
    assert (out / "summary.md").exists() and (out / "curves.png").stat().st_size > 0
    for stage in ("sft", "dpo", "ppo"):
        scored = json.loads((out / "score" / stage / "summary.json").read_text())
        assert set(scored["benchmarks"]) == {"toxicity", "stereotype", "ethics", "truthfulness", "privacy"}, stage
    print(f"tiny run: {elapsed:.1f} s")

    start = time.perf_counter()
    again = runner.invoke(app, ["run", "--preset", "tiny", "--out", str(out)])
    assert again.exit_code == 0, again.output
    assert again.output.count("complete, skipped") == 12
    assert time.perf_counter() - start < elapsed / 3

    changed = runner.invoke(app, ["run", "--preset", "tiny", "--out", str(out), "--seed", "1"])
    assert changed.exit_code == 1 and "seed: 0 -> 1" in changed.output


def test_train_dpo_with_attribution_checkpoints(tmp_path):
    out = tmp_path / "dpo"
    result = runner.invoke(app, ["train", "dpo", "--out", str(out), "--max-steps", "2", "--train-limit", "4",
                                 "--eval-limit", "2", "--max-length", "40", "--max-prompt-length", "24",
                                 "--batch-size", "2", "--attribution-every", "1"])
    assert result.exit_code == 0, result.output
    saved = sorted(p.name for p in (out / "attribution").glob("checkpoint-*"))
    assert saved == ["checkpoint-1", "checkpoint-2"]
    assert (out / "attribution" / "callback.json").exists()
    assert list((out / "attribution" / "checkpoint-1" / "model").glob("tokenizer*"))  # saved with the model
    from trustattr.attribution import ScoreArguments, score

    scored = score(ScoreArguments(reference="tiny", limit=4, benchmarks=("ethics",), test_limit=2, method="tracin",
                                  checkpoints=str(out / "attribution"), out=str(tmp_path / "score"), max_length=40,
                                  max_prompt_length=24, last_k_blocks=1, k=4, batch_size=4, shard_size=4),
                   progress=False, log=lambda message: None)
    assert scored.summary["states"] == ["checkpoint-1", "checkpoint-2"] and abs(scored.raw).max() > 0
    rejected = runner.invoke(app, ["train", "rm", "--out", str(tmp_path / "rm"), "--attribution-every", "1"])
    assert rejected.exit_code != 0  # the rm command has no such option
