"""The RLHF pipeline: SFT, DPO, reward model (trl) and a compact PPO, with resumable stages and presets.

    from trustattr.train import SFTArguments, DPOArguments, train_sft, train_dpo, get_preset
    sft = train_sft(get_preset("tiny").sft, "out/sft")                     # StageResult; out/sft/model
    dpo = train_dpo(DPOArguments(model=str(sft.model_dir)), "out/dpo")      # before/after in dpo.metrics
    run_pipeline(RunArguments(out=Path("runs/tiny"), preset="tiny"))       # trustattr run

Heavy modules (trl, datasets, peft) are imported only when a stage runs.
"""

from trustattr.train.config import DPOArguments, PPOArguments, RewardArguments, SFTArguments, StageArguments
from trustattr.train.presets import PRESETS, Preset, get_preset

__all__ = [
    "DPOArguments",
    "PPOArguments",
    "PRESETS",
    "Preset",
    "RewardArguments",
    "RunArguments",
    "SFTArguments",
    "StageArguments",
    "get_preset",
    "preference_accuracy",
    "reward_at_last_token",
    "run_pipeline",
    "sequence_logprobs",
    "train_dpo",
    "train_ppo",
    "train_reward_model",
    "train_sft",
]

_LAZY = {
    "RunArguments": "trustattr.train.pipeline",
    "run_pipeline": "trustattr.train.pipeline",
    "train_sft": "trustattr.train.sft",
    "train_dpo": "trustattr.train.dpo",
    "train_reward_model": "trustattr.train.reward",
    "reward_at_last_token": "trustattr.train.reward",
    "train_ppo": "trustattr.train.ppo_stage",
    "sequence_logprobs": "trustattr.train.logprobs",
    "preference_accuracy": "trustattr.train.evaluation",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'trustattr.train' has no attribute {name!r}")
