"""Arguments of the four training stages (SFT, DPO, reward model, PPO) as validated dataclasses.

Every field's ``metadata["help"]`` is the single source of the CLI help (``trustattr train <stage> --help``).
Defaults are the values of the ``tiny`` preset; :mod:`trustattr.train.presets` builds the others with
``dataclasses.replace`` so validation always runs.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "DPOArguments",
    "PPOArguments",
    "RewardArguments",
    "SFTArguments",
    "STAGE_ARGUMENTS",
    "StageArguments",
    "arguments_from_dict",
]

LORA_MODULES_LLAMA = "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj"
SCHEDULERS = ("constant", "constant_with_warmup", "linear", "cosine")


def _help(text: str, default: Any) -> Any:
    return field(default=default, metadata={"help": text})


@dataclass(frozen=True)
class StageArguments:
    """Fields shared by every training stage."""

    # --- model ---
    model: str = _help("model to start from: tiny, smol, a local checkpoint directory or a hub name", "tiny")
    seed: int = _help("seed of model init (tiny), data order and sampling", 0)
    # --- data ---
    data: str = _help(
        "preference data: hh, hh-helpful, hh-harmless, a local .jsonl/.json(.gz)/.parquet/.csv/.arrow file, a datasets "
        "save_to_disk folder or a hub dataset name[:config]:split; rows in any trl preference format (README)", "hh")
    train_limit: int | None = _help("train pairs (a seeded subsample of the train split); none = all", 32)
    eval_limit: int | None = _help("held-out pairs for the before/after evaluation; 0 = skip it", 16)
    eval_fraction: float = _help("share of the data in the held-out split (split by a hash of the text)", 0.1)
    max_length: int = _help("max tokens of prompt + response (prompts are cut from the left to fit)", 96)
    max_prompt_length: int = _help("max prompt tokens kept (the end of the conversation)", 48)
    # --- optimisation ---
    learning_rate: float = _help("peak learning rate (AdamW)", 1e-3)
    lr_scheduler: str = _help(f"learning-rate schedule: {', '.join(SCHEDULERS)}", "cosine")
    warmup_ratio: float = _help("share of the steps spent warming the learning rate up", 0.0)
    weight_decay: float = _help("AdamW weight decay", 0.0)
    epochs: float = _help("passes over the train pairs", 1.0)
    max_steps: int = _help("stop after this many optimizer steps; -1 = run all epochs", -1)
    batch_size: int = _help("pairs per device batch", 4)
    gradient_accumulation_steps: int = _help("batches per optimizer step", 1)
    max_grad_norm: float = _help("gradient clipping norm", 1.0)
    bf16: bool = _help("bf16 autocast (CPU with AVX512-BF16 or GPU); off = fp32", False)
    activation_checkpointing: bool = _help("recompute activations in backward (less memory, ~30% slower)", False)
    # --- LoRA (peft) ---
    lora: bool = _help("train LoRA adapters (peft) instead of all weights; merged into the saved model", False)
    lora_r: int = _help("LoRA rank", 8)
    lora_alpha: int = _help("LoRA alpha (scaling = alpha / r)", 16)
    lora_dropout: float = _help("LoRA dropout", 0.0)
    lora_target_modules: str = _help("comma-separated module names that get adapters", LORA_MODULES_LLAMA)
    lora_layers: int = _help("adapters only in the last N transformer blocks (backward stops there); 0 = all", 0)
    # --- checkpoints and logs ---
    save_steps: int = _help("save a resumable checkpoint every this many optimizer steps", 4)
    logging_steps: int = _help("log losses every this many optimizer steps", 1)

    def __post_init__(self) -> None:
        _check(bool(self.model), "model", "a model name or path", self.model)
        _check(bool(self.data), "data", "a data source", self.data)
        for name in ("train_limit", "eval_limit"):
            value = getattr(self, name)
            _check(value is None or value >= 0, name, "an integer >= 0 or None", value)
        _check(self.train_limit != 0, "train_limit", "an integer >= 1 or None", self.train_limit)
        _check(0.0 < self.eval_fraction < 1.0, "eval_fraction", "a number in (0, 1)", self.eval_fraction)
        _check(self.max_length >= 8, "max_length", "an integer >= 8", self.max_length)
        _check(
            0 < self.max_prompt_length <= self.max_length - 4,
            "max_prompt_length",
            f"an integer in [1, max_length - 4 = {self.max_length - 4}]",
            self.max_prompt_length,
        )
        _check(self.learning_rate > 0, "learning_rate", "a number > 0", self.learning_rate)
        _check(self.lr_scheduler in SCHEDULERS, "lr_scheduler", " | ".join(SCHEDULERS), self.lr_scheduler)
        _check(0.0 <= self.warmup_ratio < 1.0, "warmup_ratio", "a number in [0, 1)", self.warmup_ratio)
        _check(self.weight_decay >= 0, "weight_decay", "a number >= 0", self.weight_decay)
        _check(self.epochs > 0, "epochs", "a number > 0", self.epochs)
        _check(self.max_steps == -1 or self.max_steps > 0, "max_steps", "-1 or an integer > 0", self.max_steps)
        for name in ("batch_size", "gradient_accumulation_steps", "save_steps", "logging_steps", "lora_r"):
            _check(getattr(self, name) >= 1, name, "an integer >= 1", getattr(self, name))
        _check(self.max_grad_norm > 0, "max_grad_norm", "a number > 0", self.max_grad_norm)
        _check(self.lora_alpha > 0, "lora_alpha", "an integer > 0", self.lora_alpha)
        _check(self.lora_layers >= 0, "lora_layers", "an integer >= 0", self.lora_layers)
        _check(0.0 <= self.lora_dropout < 1.0, "lora_dropout", "a number in [0, 1)", self.lora_dropout)
        _check(bool(self.lora_modules), "lora_target_modules", "at least one module name", self.lora_target_modules)

    @property
    def lora_modules(self) -> list[str]:
        return [name.strip() for name in self.lora_target_modules.split(",") if name.strip()]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class SFTArguments(StageArguments):
    """Supervised fine-tuning on prompt + chosen response (paper.md §1.3, L_SFT)."""

    completion_only_loss: bool = _help("loss on the response tokens only (off = also on the prompt)", True)


@dataclass(frozen=True)
class DPOArguments(StageArguments):
    """Direct preference optimisation against a frozen reference (the starting model)."""

    beta: float = _help("DPO beta: strength of the implicit KL to the reference (paper: 0.1)", 0.1)
    reference_model: str = _help("reference model; empty = the starting model (LoRA: adapters disabled)", "")

    def __post_init__(self) -> None:
        super().__post_init__()
        _check(self.beta > 0, "beta", "a number > 0", self.beta)


@dataclass(frozen=True)
class RewardArguments(StageArguments):
    """Bradley-Terry reward model: a one-output sequence-classification head on the starting model."""


@dataclass(frozen=True)
class PPOArguments(StageArguments):
    """The compact PPO (trustattr.train.ppo): policy + value head, reward from a trained reward model."""

    reward_model: str = _help("trained reward model (a `trustattr train rm` model directory, or tiny)", "")
    steps: int = _help("PPO iterations (rollout batch + PPO epochs each)", 3)
    rollout_batch_size: int = _help("prompts per rollout batch", 8)
    minibatch_size: int = _help("rollouts per PPO gradient step", 4)
    ppo_epochs: int = _help("passes over each rollout batch (paper: 4)", 2)
    max_new_tokens: int = _help("generated response tokens per prompt", 16)
    temperature: float = _help("sampling temperature of the rollouts", 1.0)
    gamma: float = _help("GAE discount (paper: 1)", 1.0)
    lam: float = _help("GAE lambda (paper: 0.95)", 0.95)
    cliprange: float = _help("policy ratio clip (paper: 0.2)", 0.2)
    cliprange_value: float = _help("value clip (paper: 0.2)", 0.2)
    vf_coef: float = _help("value-loss weight (paper: 1)", 1.0)
    init_kl_coef: float = _help("initial KL penalty coefficient (paper: 0.05)", 0.05)
    target_kl: float = _help("target KL of the adaptive controller; 0 = fixed coefficient (paper: 6)", 6.0)
    kl_horizon: int = _help("horizon of the adaptive KL controller (paper: 10000)", 10000)
    cliprange_reward: float = _help("clip rewards to [-x, x] (paper: 10)", 10.0)
    delta_reward: bool = _help("reward = RM(prompt+sample) - RM(prompt+chosen), as in the paper's PPO", True)
    whiten_advantages: bool = _help("normalise advantages per rollout batch", True)

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("steps", "rollout_batch_size", "minibatch_size", "ppo_epochs", "max_new_tokens", "kl_horizon"):
            _check(getattr(self, name) >= 1, name, "an integer >= 1", getattr(self, name))
        _check(
            self.rollout_batch_size % self.minibatch_size == 0,
            "minibatch_size",
            f"a divisor of rollout_batch_size ({self.rollout_batch_size})",
            self.minibatch_size,
        )
        _check(self.temperature > 0, "temperature", "a number > 0", self.temperature)
        _check(0.0 <= self.gamma <= 1.0, "gamma", "a number in [0, 1]", self.gamma)
        _check(0.0 <= self.lam <= 1.0, "lam", "a number in [0, 1]", self.lam)
        for name in ("cliprange", "cliprange_value", "cliprange_reward", "vf_coef"):
            _check(getattr(self, name) > 0, name, "a number > 0", getattr(self, name))
        _check(self.init_kl_coef >= 0, "init_kl_coef", "a number >= 0", self.init_kl_coef)
        _check(self.target_kl >= 0, "target_kl", "a number >= 0", self.target_kl)


STAGE_ARGUMENTS: dict[str, type[StageArguments]] = {
    "sft": SFTArguments,
    "dpo": DPOArguments,
    "rm": RewardArguments,
    "ppo": PPOArguments,
}


def arguments_from_dict(kind: str, values: dict[str, Any]) -> StageArguments:
    """Rebuild (and validate) the arguments of stage ``kind`` from ``to_dict()`` output."""
    cls = STAGE_ARGUMENTS[kind]
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"{kind} arguments: unknown field(s) {', '.join(unknown)}")
    return cls(**values)


def _check(ok: bool, name: str, expected: str, got: Any) -> None:
    if not ok:
        raise ValueError(f"{name}: expected {expected}, got {got!r}")
