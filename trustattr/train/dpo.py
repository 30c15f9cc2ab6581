"""Direct preference optimisation with trl's DPOTrainer, against an explicit frozen reference."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from transformers import PreTrainedModel, TrainerCallback

from trustattr.paths import atomic_path
from trustattr.train.config import DPOArguments
from trustattr.train.data import fit_pairs, load_stage_pairs, preference_rows
from trustattr.train.loading import load_policy
from trustattr.train.stage_dir import StageResult
from trustattr.train.trainer_common import lora_config, num_layers, run_stage, trainer_arguments

__all__ = ["train_dpo"]


def train_dpo(
    args: DPOArguments,
    out_dir: str | Path,
    overwrite: bool = False,
    callbacks: Sequence[TrainerCallback] = (),
) -> StageResult:
    """DPO ``args.model`` (usually an SFT model) on the preference pairs; writes ``OUT/model``.

    The reference is ``args.reference_model`` or, by default, the starting model: with LoRA the same
    weights with the adapters disabled (exact, no second copy), otherwise a second copy loaded from
    ``args.model`` and passed to trl explicitly (trl cannot rebuild it from an in-memory model).
    The held-out evaluation reports the preference accuracy before and after
    (:func:`trustattr.train.evaluation.preference_accuracy`).
    """
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    state = {}

    def reference() -> PreTrainedModel:
        return load_policy(args.reference_model or args.model, seed=args.seed)[0]

    def build(checkpoints: Path):
        model, tokenizer = load_policy(args.model, seed=args.seed)
        state["tokenizer"] = tokenizer
        pairs = fit_pairs(tokenizer, load_stage_pairs(args, "train"), args)
        config = DPOConfig(**trainer_arguments(args, checkpoints), max_length=args.max_length, beta=args.beta)
        explicit_reference = None if (args.lora and not args.reference_model) else reference()
        trainer = DPOTrainer(
            model=model,
            ref_model=explicit_reference,
            args=config,
            train_dataset=Dataset.from_list(preference_rows(pairs)),
            processing_class=tokenizer,
            peft_config=lora_config(args, "CAUSAL_LM", num_layers(model)),
        )
        return trainer, tokenizer

    def evaluate(model: PreTrainedModel, when: str) -> dict[str, float]:
        from trustattr.train.evaluation import pair_logprobs, preference_accuracy

        tokenizer = state["tokenizer"]
        pairs = fit_pairs(tokenizer, load_stage_pairs(args, "eval"), args)
        saved = Path(out_dir) / "checkpoints" / "reference_logprobs.pt"  # the starting model's, from "before"
        if when == "before" and not args.reference_model:
            reference_logprobs = pair_logprobs(model, tokenizer, pairs, args.batch_size)
            with atomic_path(saved) as tmp:
                torch.save(reference_logprobs, tmp)
            return preference_accuracy(model, None, tokenizer, pairs, beta=args.beta, batch_size=args.batch_size,
                                       reference_logprobs=reference_logprobs)
        if saved.exists() and not args.reference_model:
            return preference_accuracy(model, None, tokenizer, pairs, beta=args.beta, batch_size=args.batch_size,
                                       reference_logprobs=torch.load(saved, weights_only=True))
        return preference_accuracy(model, reference(), tokenizer, pairs, beta=args.beta, batch_size=args.batch_size)

    return run_stage(
        "dpo", args, Path(out_dir), build, evaluate if args.eval_limit else None,
        curve_keys=("loss", "rewards/accuracies", "rewards/margins"), overwrite=overwrite, callbacks=callbacks,
    )
