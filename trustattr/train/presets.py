"""Named presets for the whole pipeline: ``tiny`` (tests, minutes) and ``smol`` (SmolLM2-135M + LoRA on CPU).

Paper values (paper.md §1.4) vs presets:

================  ============================  ==================  ======================
setting           paper                          smol                tiny
================  ============================  ==================  ======================
model             Pythia 1.4-6.9B, Llama-7B     SmolLM2-135M-Inst.  random 2-layer, d=64
fine-tuning       full                          LoRA r=16, a=32     full
train pairs       ~100k (static-hh / HH)        256 (shipped HH)    16 (shipped HH)
max length        512-1024                      192 (prompt 128)    64 (prompt 32)
SFT               lr 1e-6, 3 ep., batch 32      lr 2e-4, 1 ep., 8   lr 1e-3, 4 steps
DPO               β 0.1, lr 5e-7-1e-6, 1 ep.    β 0.1, lr 1e-4, 1   β 0.1, lr 1e-3
RM                GPT-J-6B (Dahoas)             LoRA on SFT, 1e-4   on SFT, lr 1e-3
PPO               lr 8e-6, 4 PPO epochs,        lr 5e-5, 4 epochs,  lr 1e-3, 1 epoch,
                  128 new tokens, KL 0.05→6,    32 new tokens, same  8 new tokens, same
                  γ 1, λ 0.95, clip 0.2         γ/λ/clip/KL          γ/λ/clip/KL
================  ============================  ==================  ======================

LoRA learning rates are ~100x full fine-tuning ones (the usual rule for adapters); the paper's lr with LoRA
on a few hundred pairs would leave the model unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from trustattr.train.config import DPOArguments, PPOArguments, RewardArguments, SFTArguments

__all__ = ["PRESETS", "Preset", "get_preset"]


@dataclass(frozen=True)
class Preset:
    """Arguments of every stage, plus the trust-benchmark evaluation after each stage."""

    name: str
    sft: SFTArguments
    dpo: DPOArguments
    rm: RewardArguments
    ppo: PPOArguments
    eval_limit: int | None = field(default=4, metadata={"help": "prompts per trust benchmark after each stage"})
    eval_batch_size: int = field(default=8, metadata={"help": "generation batch size of the trust benchmarks"})

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("name: expected a preset name, got ''")
        if self.eval_limit is not None and self.eval_limit < 1:
            raise ValueError(f"eval_limit: expected an integer >= 1 or None, got {self.eval_limit}")
        if self.eval_batch_size < 1:
            raise ValueError(f"eval_batch_size: expected an integer >= 1, got {self.eval_batch_size}")


def _tiny() -> Preset:
    common = dict(model="tiny", train_limit=16, eval_limit=8, max_length=64, max_prompt_length=32,
                  learning_rate=1e-3, batch_size=4, save_steps=2)
    return Preset(
        name="tiny",
        sft=SFTArguments(**common),
        dpo=DPOArguments(**common),
        rm=RewardArguments(**common),
        ppo=PPOArguments(**common, steps=2, rollout_batch_size=4, minibatch_size=4, ppo_epochs=1, max_new_tokens=8),
        eval_limit=2,
        eval_batch_size=4,
    )


def _smol() -> Preset:
    common = dict(model="smol", train_limit=256, eval_limit=64, max_length=192, max_prompt_length=128,
                  batch_size=8, lora=True, lora_r=16, lora_alpha=32, warmup_ratio=0.1, save_steps=8)
    return Preset(
        name="smol",
        sft=SFTArguments(**common, learning_rate=2e-4),
        dpo=DPOArguments(**common, learning_rate=1e-4, beta=0.1),
        rm=RewardArguments(**common, learning_rate=1e-4),
        ppo=replace(
            PPOArguments(**{**common, "train_limit": 64, "eval_limit": 32}, learning_rate=5e-5),
            steps=8, rollout_batch_size=16, minibatch_size=8, ppo_epochs=4, max_new_tokens=32, save_steps=2,
        ),
        eval_limit=16,
        eval_batch_size=8,
    )


PRESETS = {"tiny": _tiny, "smol": _smol}


def get_preset(name: str) -> Preset:
    """A fresh, validated preset by name."""
    if name not in PRESETS:
        raise ValueError(f"preset: expected one of {', '.join(PRESETS)}, got {name!r}")
    return PRESETS[name]()
