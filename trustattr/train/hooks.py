"""Attach trustattr's AttributionCallback (trustattr.integrations.trl) to a training stage.

The callback saves, every N optimizer steps and at the end, a checkpoint, the learning rate and the projected
per-pair gradient features of the stage's train pairs and held-out pairs (cut exactly as the trainer sees them),
into ``OUT/attribution/`` (read by ``trustattr score --checkpoints OUT/attribution``).
"""

from __future__ import annotations

from pathlib import Path

from trustattr.train.config import DPOArguments, StageArguments
from trustattr.train.data import fit_pairs, load_stage_pairs

__all__ = ["ATTRIBUTION_LOSSES", "attribution_callback"]

ATTRIBUTION_LOSSES = {"sft": "sft", "dpo": "dpo"}  # stage -> per-pair loss of the features


def attribution_callback(kind: str, args: StageArguments, out_dir: str | Path, every_n_steps: int):
    """An AttributionCallback for stage ``kind`` (sft or dpo) writing to ``out_dir/attribution``."""
    if kind not in ATTRIBUTION_LOSSES:
        raise ValueError(f"attribution_every: supported for stages {', '.join(ATTRIBUTION_LOSSES)}, not {kind!r}")
    from trustattr.integrations.trl import AttributionCallback
    from trustattr.models import load_tokenizer

    tokenizer = load_tokenizer(args.model)
    reference = None  # LoRA: the callback disables the adapters, as DPO does
    if isinstance(args, DPOArguments) and (args.reference_model or not args.lora):
        from trustattr.train.loading import load_policy

        reference = load_policy(args.reference_model or args.model, seed=args.seed)[0]
    train_pairs = fit_pairs(tokenizer, load_stage_pairs(args, "train"), args)
    test_pairs = fit_pairs(tokenizer, load_stage_pairs(args, "eval"), args) if args.eval_limit else None
    return AttributionCallback(
        Path(out_dir) / "attribution",
        every_n_steps=every_n_steps,
        tokenizer=tokenizer,
        train_pairs=train_pairs,
        test_pairs=test_pairs,
        loss=ATTRIBUTION_LOSSES[kind],
        beta=args.beta if isinstance(args, DPOArguments) else 0.1,
        max_length=args.max_length,
        max_prompt_length=args.max_prompt_length,
        reference_model=reference,
        seed=args.seed,
        batch_size=args.batch_size,
    )
