"""The stage runner behind `trustattr run`, with fake stages (no models)."""

from __future__ import annotations

import json

import pytest

from trustattr.errors import ArgumentsMismatchError, CheckpointError
from trustattr.train.pipeline import RunArguments, build_stages
from trustattr.train.runner import Stage, StageRunner


def fake_stage(run_dir, name, calls, arguments=None, needs=(), fail=False):
    marker = run_dir / f"{name}.done"

    def run():
        calls.append(name)
        if fail:
            raise KeyboardInterrupt
        marker.write_text("ok")
        return {"value": len(calls)}

    return Stage(name, arguments or {"x": 1}, run, marker.exists, needs=needs)


def test_complete_stages_are_skipped_on_rerun(tmp_path):
    calls = []
    stages = [fake_stage(tmp_path, "a", calls), fake_stage(tmp_path, "b", calls, needs=("a",))]
    status = StageRunner(tmp_path, {"preset": "x"}).run(stages)
    assert calls == ["a", "b"]
    assert status["stages"]["b"]["status"] == "complete" and status["stages"]["b"]["summary"] == {"value": 2}
    StageRunner(tmp_path, {"preset": "x"}).run(stages)
    assert calls == ["a", "b"]
    saved = json.loads((tmp_path / "run.json").read_text())
    assert saved["stages"]["a"]["arguments"] == {"x": 1} and saved["arguments"] == {"preset": "x"}


def test_a_stage_whose_outputs_vanished_runs_again(tmp_path):
    calls = []
    stages = [fake_stage(tmp_path, "a", calls)]
    StageRunner(tmp_path, {}).run(stages)
    (tmp_path / "a.done").unlink()
    StageRunner(tmp_path, {}).run(stages)
    assert calls == ["a", "a"]


def test_changed_arguments_name_the_difference(tmp_path):
    calls = []
    StageRunner(tmp_path, {}).run([fake_stage(tmp_path, "a", calls, {"lr": 0.1, "steps": 4})])
    with pytest.raises(ArgumentsMismatchError, match=r"stage 'a'.*lr: 0\.1 -> 0\.2"):
        StageRunner(tmp_path, {}).run([fake_stage(tmp_path, "a", calls, {"lr": 0.2, "steps": 4})])
    StageRunner(tmp_path, {}).run([fake_stage(tmp_path, "a", calls, {"lr": 0.2, "steps": 4})], overwrite=True)
    assert calls == ["a", "a"]


def test_interrupted_stage_is_recorded_and_rerun(tmp_path):
    calls = []
    with pytest.raises(KeyboardInterrupt):
        StageRunner(tmp_path, {}).run([fake_stage(tmp_path, "a", calls, fail=True)])
    record = json.loads((tmp_path / "run.json").read_text())["stages"]["a"]
    assert record["status"] == "failed" and record["error"] == "KeyboardInterrupt: "
    StageRunner(tmp_path, {}).run([fake_stage(tmp_path, "a", calls)])
    assert calls == ["a", "a"]


def test_only_and_needs(tmp_path):
    calls = []
    stages = [fake_stage(tmp_path, "a", calls), fake_stage(tmp_path, "b", calls, needs=("a",))]
    with pytest.raises(CheckpointError, match="needs stage 'a'"):
        StageRunner(tmp_path, {}).run(stages, only=["b"])
    with pytest.raises(ValueError, match="unknown stage"):
        StageRunner(tmp_path, {}).run(stages, only=["zzz"])
    StageRunner(tmp_path, {}).run(stages, only=["a"])
    assert calls == ["a"]


def test_corrupt_run_json_is_a_checkpoint_error(tmp_path):
    (tmp_path / "run.json").write_text("{")
    with pytest.raises(CheckpointError, match="run.json"):
        StageRunner(tmp_path, {}).run([fake_stage(tmp_path, "a", [])])


def test_pipeline_stage_list(tmp_path):
    names = [stage.name for stage in build_stages(RunArguments(out=tmp_path, preset="tiny"))]
    assert names == ["base", "eval-base", "sft", "eval-sft", "dpo", "eval-dpo", "rm", "ppo", "eval-ppo",
                     "score-sft", "score-dpo", "score-ppo"]
    scores = {stage.name: stage for stage in build_stages(RunArguments(out=tmp_path, preset="tiny"))}
    assert scores["score-dpo"].needs == ("dpo", "sft") and scores["score-dpo"].arguments["loss"] == "dpo"
    assert scores["score-ppo"].needs == ("rm", "sft") and scores["score-ppo"].arguments["loss"] == "reward"
    no_eval = build_stages(RunArguments(out=tmp_path, preset="tiny", evaluate=False, attribute=False))
    assert [stage.name for stage in no_eval] == ["base", "sft", "dpo", "rm", "ppo"]
    ppo = no_eval[-1]
    assert ppo.needs == ("sft", "rm") and ppo.arguments["reward_model"] == "stage:rm"
    assert ppo.arguments["model"] == "stage:sft" and ppo.arguments["steps"] == 2


def test_run_arguments_are_validated(tmp_path):
    with pytest.raises(ValueError, match="preset"):
        RunArguments(out=tmp_path, preset="huge")
    with pytest.raises(ValueError, match="eval_limit"):
        RunArguments(out=tmp_path, eval_limit=0)
    with pytest.raises(ValueError, match="method: expected one of datainf.*got 'tracin'"):
        RunArguments(out=tmp_path, method="tracin")


def test_train_stage_checks_its_inputs(tmp_path):
    from trustattr.train.config import DPOArguments, PPOArguments
    from trustattr.train.stages import train_stage

    with pytest.raises(ValueError, match="stage: expected one of sft, dpo, rm, ppo"):
        train_stage("kto", DPOArguments(), tmp_path)
    with pytest.raises(TypeError, match="needs SFTArguments, got DPOArguments"):
        train_stage("sft", DPOArguments(), tmp_path)
    with pytest.raises(ValueError, match="callbacks"):
        train_stage("ppo", PPOArguments(reward_model="tiny"), tmp_path, callbacks=[object()])
    assert not any(tmp_path.iterdir())  # nothing written
