"""One entry point for the four training stages, by name (used by the CLI and the pipeline)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from transformers import TrainerCallback

from trustattr.train.config import STAGE_ARGUMENTS, StageArguments
from trustattr.train.stage_dir import StageResult

__all__ = ["train_stage"]


def train_stage(
    kind: str,
    args: StageArguments,
    out_dir: str | Path,
    overwrite: bool = False,
    callbacks: Sequence[TrainerCallback] = (),
) -> StageResult:
    """Run stage ``kind`` (sft, dpo, rm, ppo) with ``args`` into ``out_dir``; callbacks go to trl's trainer."""
    if kind not in STAGE_ARGUMENTS:
        raise ValueError(f"stage: expected one of {', '.join(STAGE_ARGUMENTS)}, got {kind!r}")
    if not isinstance(args, STAGE_ARGUMENTS[kind]):
        raise TypeError(f"args: stage {kind} needs {STAGE_ARGUMENTS[kind].__name__}, got {type(args).__name__}")
    if kind == "ppo":
        if callbacks:
            raise ValueError("callbacks: the compact PPO is not a transformers Trainer and takes no callbacks")
        from trustattr.train.ppo_stage import train_ppo

        return train_ppo(args, out_dir, overwrite=overwrite)
    from trustattr.train import dpo, reward, sft

    function = {"sft": sft.train_sft, "dpo": dpo.train_dpo, "rm": reward.train_reward_model}[kind]
    return function(args, out_dir, overwrite=overwrite, callbacks=callbacks)
