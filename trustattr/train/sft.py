"""Supervised fine-tuning on (prompt, chosen response) with trl's SFTTrainer."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from transformers import PreTrainedModel, TrainerCallback

from trustattr.train.config import SFTArguments
from trustattr.train.data import fit_pairs, load_stage_pairs, sft_rows
from trustattr.train.loading import load_policy
from trustattr.train.stage_dir import StageResult
from trustattr.train.trainer_common import lora_config, num_layers, run_stage, trainer_arguments

__all__ = ["train_sft"]


def train_sft(
    args: SFTArguments,
    out_dir: str | Path,
    overwrite: bool = False,
    callbacks: Sequence[TrainerCallback] = (),
) -> StageResult:
    """SFT ``args.model`` on the chosen responses; writes ``OUT/model`` (see trustattr.train.stage_dir).

    Resumes from the last checkpoint in ``OUT/checkpoints``; ``callbacks`` are added to the trainer
    (e.g. trustattr.integrations.trl.AttributionCallback).
    """
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    state = {}

    def build(checkpoints: Path):
        model, tokenizer = load_policy(args.model, seed=args.seed)
        state["tokenizer"] = tokenizer
        pairs = fit_pairs(tokenizer, load_stage_pairs(args, "train"), args)
        config = SFTConfig(
            **trainer_arguments(args, checkpoints),
            max_length=args.max_length,
            completion_only_loss=args.completion_only_loss,
        )
        trainer = SFTTrainer(
            model=model,
            args=config,
            train_dataset=Dataset.from_list(sft_rows(pairs)),
            processing_class=tokenizer,
            peft_config=lora_config(args, "CAUSAL_LM", num_layers(model)),
        )
        return trainer, tokenizer

    def evaluate(model: PreTrainedModel, when: str) -> dict[str, float]:
        from trustattr.train.evaluation import response_nll

        tokenizer = state["tokenizer"]
        pairs = fit_pairs(tokenizer, load_stage_pairs(args, "eval"), args)
        return response_nll(model, tokenizer, pairs, batch_size=args.batch_size)

    return run_stage(
        "sft", args, Path(out_dir), build, evaluate if args.eval_limit else None,
        curve_keys=("loss", "mean_token_accuracy"), overwrite=overwrite, callbacks=callbacks,
    )
