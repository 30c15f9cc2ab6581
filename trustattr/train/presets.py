"""Named presets for the whole pipeline: ``tiny`` (tests, minutes) and ``smol`` (SmolLM2-135M + LoRA on CPU).

Paper values (paper.md §1.4) vs presets:

=================  ===============================  ==============================  =====================
setting            paper                            smol                            tiny
=================  ===============================  ==============================  =====================
model              Pythia 1.4-6.9B, Llama-7B        SmolLM2-135M-Instruct           random 2-layer, d=64
fine-tuning        full, bf16 (DeepSpeed)           LoRA r=16 a=32, last 8 of 30    full, fp32
                                                    blocks, bf16 autocast
train pairs        ~100k (static-hh / HH)           192 shipped HH pairs            16 shipped HH pairs
max length         512-1024 (prompt 256)            160 (prompt 96)                 64 (prompt 32)
SFT                lr 1e-6, 1-3 epochs, batch 32    lr 2e-4, 1 epoch, batch 8       lr 1e-3, 4 steps
DPO                beta 0.1, lr 5e-7-1e-6, 1 ep.    beta 0.1, lr 1e-3, 1 epoch      beta 0.1, lr 1e-3
reward model       GPT-J-6B (Dahoas), BT loss       LoRA on the SFT model, 1e-3     SFT model, lr 1e-3
PPO                lr 8e-6, 4 PPO epochs, 128 new   lr 3e-4, 2 PPO epochs, 24 new   lr 1e-3, 1 epoch,
                   tokens, 64 rollouts/iteration    tokens, 16 rollouts x 6 iter.   8 tokens, 4 x 2 iter.
PPO (shared)       KL 0.05 adaptive to 6 over 10000, gamma 1, lambda 0.95, clip 0.2, value clip 0.2, vf 1,
                   reward clip 10, reward = RM(x, y) - RM(x, chosen)   (all presets: the paper's values)
=================  ===============================  ==============================  =====================

LoRA learning rates are ~100x full fine-tuning ones (the usual rule for adapters): the paper's learning rates
with LoRA on a few hundred pairs would leave the model unchanged. Adapters only in the last 8 blocks stop the
backward pass there, ~1.5x faster than adapters everywhere; bf16 autocast was ~2x faster than fp32 on this CPU
(AVX512-BF16; measured on a quiet machine: 8x160 tokens fwd+bwd 1.4 s vs 3.2 s).
"""

from __future__ import annotations

from dataclasses import dataclass, field

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
    common = dict(model="smol", train_limit=192, eval_limit=48, max_length=160, max_prompt_length=96,
                  batch_size=8, lora=True, lora_r=16, lora_alpha=32, lora_layers=8, bf16=True, warmup_ratio=0.1,
                  save_steps=8)
    return Preset(
        name="smol",
        sft=SFTArguments(**common, learning_rate=2e-4),
        dpo=DPOArguments(**{**common, "eval_limit": 64}, learning_rate=1e-3, beta=0.1),
        rm=RewardArguments(**{**common, "eval_limit": 64}, learning_rate=1e-3),
        ppo=PPOArguments(
            **{**common, "train_limit": 96, "eval_limit": 32, "save_steps": 2}, learning_rate=3e-4, steps=6,
            rollout_batch_size=16, minibatch_size=8, ppo_epochs=2, max_new_tokens=24,
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
