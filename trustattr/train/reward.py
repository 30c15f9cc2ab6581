"""Reward model: Bradley-Terry training with trl's RewardTrainer, and the one way rewards are read.

The reward of a sequence is the score head's output at the **last non-pad token**, which is what
``*ForSequenceClassification`` models compute when ``config.pad_token_id`` is set. trl appends eos to every
response, and SmolLM2's pad token *is* its eos, so the reward is read at the last content token, whether the
sequence ends with eos or not and whichever side it is padded on. PPO, the reward-model evaluation and the
attribution engine all call :func:`reward_at_last_token`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from transformers import PreTrainedModel, TrainerCallback

from trustattr.train.config import RewardArguments
from trustattr.train.data import fit_pairs, load_stage_pairs, preference_rows
from trustattr.train.loading import load_reward_model
from trustattr.train.stage_dir import StageResult
from trustattr.train.trainer_common import lora_config, num_layers, run_stage, trainer_arguments

__all__ = ["last_token_index", "reward_at_last_token", "train_reward_model"]


def last_token_index(input_ids: torch.Tensor, pad_token_id: int) -> torch.Tensor:
    """Index of the last non-pad token of each row: where the reward is read.

    Args:
        input_ids: [N, T].
    Returns:
        [N] int64 (0 for a row that is all padding).
    """
    keep = input_ids != pad_token_id  # [N, T]
    positions = torch.arange(input_ids.shape[1], device=input_ids.device)  # [T]
    return (keep.long() * positions).argmax(-1)  # [N]


def reward_at_last_token(
    model: PreTrainedModel, input_ids: torch.Tensor, attention_mask: torch.Tensor
) -> torch.Tensor:
    """Scalar reward per sequence: [N, T] token ids → [N] float32 (differentiable; wrap in no_grad to score).

    Works for plain and peft-wrapped ``*ForSequenceClassification`` models: their pooled logits are the score
    head at :func:`last_token_index` (the last non-pad token), which needs ``config.pad_token_id``.
    """
    config = model.config
    if getattr(config, "pad_token_id", None) is None:
        raise ValueError("reward model: config.pad_token_id must be set (the reward is read at the last non-pad token)")
    if getattr(config, "num_labels", 1) != 1:
        raise ValueError(f"reward model: expected num_labels=1 (one scalar reward), got {config.num_labels}")
    logits = model(input_ids=input_ids, attention_mask=attention_mask).logits  # [N, 1]
    return logits[:, 0].float()  # [N]


def train_reward_model(
    args: RewardArguments,
    out_dir: str | Path,
    overwrite: bool = False,
    callbacks: Sequence[TrainerCallback] = (),
) -> StageResult:
    """Train a reward model on the chosen/rejected pairs; writes ``OUT/model`` (see trustattr.train.stage_dir)."""
    from datasets import Dataset
    from trl import RewardConfig, RewardTrainer

    state = {}

    def build(checkpoints: Path):
        model, tokenizer = load_reward_model(args.model, seed=args.seed)
        state["tokenizer"] = tokenizer
        pairs = fit_pairs(tokenizer, load_stage_pairs(args, "train"), args)
        config = RewardConfig(**trainer_arguments(args, checkpoints), max_length=args.max_length)
        trainer = RewardTrainer(
            model=model,
            args=config,
            train_dataset=Dataset.from_list(preference_rows(pairs)),
            processing_class=tokenizer,
            peft_config=lora_config(args, "SEQ_CLS", num_layers(model)),
        )
        return trainer, tokenizer

    def evaluate(model: PreTrainedModel, when: str) -> dict[str, float]:
        from trustattr.train.evaluation import reward_accuracy

        tokenizer = state["tokenizer"]
        pairs = fit_pairs(tokenizer, load_stage_pairs(args, "eval"), args)
        return reward_accuracy(model, tokenizer, pairs, batch_size=args.batch_size)

    return run_stage(
        "rm", args, Path(out_dir), build, evaluate if args.eval_limit else None,
        curve_keys=("loss", "accuracy", "margin"), overwrite=overwrite, callbacks=callbacks,
    )

