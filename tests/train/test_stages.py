"""Training stages on the tiny model: resume after an interrupt, corrupt checkpoints, argument checks, LoRA."""

from __future__ import annotations

import dataclasses
import json
import shutil

import pytest
import torch
from safetensors.torch import load_file
from transformers import TrainerCallback

from trustattr.errors import ArgumentsMismatchError, CheckpointError
from trustattr.train.config import DPOArguments, PPOArguments, RewardArguments, SFTArguments
from trustattr.train.dpo import train_dpo
from trustattr.train.ppo import CompactPPO
from trustattr.train.ppo_stage import train_ppo
from trustattr.train.reward import train_reward_model
from trustattr.train.sft import train_sft

FAST = dict(train_limit=8, eval_limit=0, max_length=40, max_prompt_length=24, batch_size=2, save_steps=2,
            lr_scheduler="constant")


class InterruptAfterSave(TrainerCallback):
    """Simulates Ctrl-C right after the checkpoint of ``step`` was written."""

    def __init__(self, step: int):
        self.step = step

    def on_save(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise KeyboardInterrupt


def weights(model_dir) -> dict[str, torch.Tensor]:
    return load_file(str(model_dir / "model.safetensors"))


def test_sft_resumes_after_an_interrupt_and_matches_an_uninterrupted_run(tmp_path):
    args = SFTArguments(**FAST)
    with pytest.raises(KeyboardInterrupt):
        train_sft(args, tmp_path / "interrupted", callbacks=[InterruptAfterSave(2)])
    assert (tmp_path / "interrupted" / "checkpoints" / "checkpoint-2").is_dir()
    assert not (tmp_path / "interrupted" / "stage.json").exists()
    resumed = train_sft(args, tmp_path / "interrupted")
    assert resumed.resumed_from_step == 2 and resumed.metrics["global_step"] == 4
    straight = train_sft(args, tmp_path / "straight")
    assert straight.resumed_from_step is None
    a, b = weights(resumed.model_dir), weights(straight.model_dir)
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], atol=1e-6, rtol=1e-5, msg=name)
    again = train_sft(args, tmp_path / "straight")
    assert again.skipped and again.metrics["global_step"] == 4


def test_corrupt_or_incomplete_checkpoint_is_a_clear_error(tmp_path):
    args = SFTArguments(**{**FAST, "max_steps": 2, "save_steps": 1})
    out = tmp_path / "sft"
    with pytest.raises(KeyboardInterrupt):
        train_sft(args, out, callbacks=[InterruptAfterSave(2)])
    latest = out / "checkpoints" / "checkpoint-2"
    weights_file = latest / "model.safetensors"
    weights_file.write_bytes(weights_file.read_bytes()[:100])  # truncated write
    with pytest.raises(CheckpointError, match=r"checkpoint-2/model\.safetensors"):
        train_sft(args, out)
    weights_file.unlink()
    with pytest.raises(CheckpointError, match=r"checkpoint-2' holds no weights"):
        train_sft(args, out)
    (out / "checkpoints" / "checkpoint-1" / "trainer_state.json").write_text("{not json")
    shutil.rmtree(latest)  # the user deletes the broken one: now the earlier one is checked
    with pytest.raises(CheckpointError, match=r"checkpoint-1/trainer_state\.json' is corrupt"):
        train_sft(args, out)
    (out / "checkpoints" / "checkpoint-1" / "trainer_state.json").unlink()
    with pytest.raises(CheckpointError, match=r"checkpoint-1' is missing trainer_state\.json"):
        train_sft(args, out)


def test_changed_arguments_are_refused_and_overwrite_restarts(tmp_path):
    args = SFTArguments(**{**FAST, "max_steps": 2, "save_steps": 1})
    with pytest.raises(KeyboardInterrupt):
        train_sft(args, tmp_path / "sft", callbacks=[InterruptAfterSave(1)])
    changed = dataclasses.replace(args, learning_rate=5e-4)
    with pytest.raises(ArgumentsMismatchError, match=r"learning_rate: 0\.001 -> 0\.0005"):
        train_sft(changed, tmp_path / "sft")
    result = train_sft(changed, tmp_path / "sft", overwrite=True)
    assert result.resumed_from_step is None and result.metrics["global_step"] == 2


def test_missing_stage_model_is_a_checkpoint_error(tmp_path):
    args = SFTArguments(**{**FAST, "max_steps": 1})
    done = train_sft(args, tmp_path / "sft")
    (done.model_dir / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="holds no weights"):
        train_sft(args, tmp_path / "sft")
    with pytest.raises(CheckpointError, match="holds no weights"):
        train_dpo(DPOArguments(**{**FAST, "model": str(done.model_dir)}), tmp_path / "dpo")


def test_dpo_and_reward_model_with_lora_save_plain_models_and_evaluate(tmp_path):
    common = {**FAST, "eval_limit": 4, "max_steps": 1, "lora": True, "lora_r": 4, "learning_rate": 1e-2}
    sft = train_sft(SFTArguments(**{**FAST, "max_steps": 1}), tmp_path / "sft")
    dpo = train_dpo(DPOArguments(**{**common, "model": str(sft.model_dir)}), tmp_path / "dpo")
    assert dpo.metrics["before"]["implicit_reward_accuracy"] == 0.5  # policy == reference: every margin is 0
    assert dpo.metrics["before"]["mean_margin"] == 0.0
    assert dpo.metrics["after"]["mean_margin"] != 0.0
    assert not any("lora" in name for name in weights(dpo.model_dir))
    config = json.loads((dpo.model_dir / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"]
    rm = train_reward_model(RewardArguments(**{**common, "model": str(sft.model_dir)}), tmp_path / "rm")
    config = json.loads((rm.model_dir / "config.json").read_text())
    assert config["architectures"] == ["LlamaForSequenceClassification"] and config["pad_token_id"] is not None
    assert not any("lora" in name for name in weights(rm.model_dir))
    assert {"accuracy", "mean_margin"} <= set(rm.metrics["after"])
    assert (tmp_path / "dpo" / "curves.png").stat().st_size > 0


def test_ppo_stage_resumes_exactly(tmp_path, monkeypatch):
    args = PPOArguments(**{**FAST, "save_steps": 1}, reward_model="tiny", steps=2, rollout_batch_size=2,
                        minibatch_size=2, ppo_epochs=1, max_new_tokens=4)
    straight = train_ppo(args, tmp_path / "straight")
    assert [entry["step"] for entry in straight.metrics["log_history"]] == [1, 2]

    original_step = CompactPPO.step

    def interrupted_step(self, *a, **k):
        if self.iteration == 1:
            raise KeyboardInterrupt
        return original_step(self, *a, **k)

    monkeypatch.setattr(CompactPPO, "step", interrupted_step)
    with pytest.raises(KeyboardInterrupt):
        train_ppo(args, tmp_path / "interrupted")
    monkeypatch.setattr(CompactPPO, "step", original_step)
    resumed = train_ppo(args, tmp_path / "interrupted")
    assert resumed.resumed_from_step == 1
    assert resumed.metrics["log_history"] == straight.metrics["log_history"]
    a, b = weights(resumed.model_dir), weights(straight.model_dir)
    for name in a:
        torch.testing.assert_close(a[name], b[name], atol=1e-6, rtol=1e-5, msg=name)
