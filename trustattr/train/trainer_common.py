"""What the three trl-based stages (SFT, DPO, reward model) share: trainer arguments, LoRA, resume, saving."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase, TrainerCallback

from trustattr.paths import atomic_path
from trustattr.train.config import StageArguments
from trustattr.train.plots import plot_curves
from trustattr.train.stage_dir import StageDir, StageResult, latest_checkpoint, write_json

__all__ = ["lora_config", "num_layers", "run_stage", "save_model", "trainer_arguments"]


def trainer_arguments(args: StageArguments, output_dir: Path) -> dict[str, Any]:
    """Keyword arguments shared by SFTConfig, DPOConfig and RewardConfig.

    On a machine without CUDA this sets ``use_cpu=True``; ``bf16`` follows ``args.bf16`` (trl defaults it to
    True, which fails on CPU) and so does ``activation_checkpointing`` (trl: on). Checkpoints keep the optimizer
    so that training can resume.
    """
    return {
        "output_dir": str(output_dir),
        "use_cpu": not torch.cuda.is_available(),
        "bf16": args.bf16,
        "seed": args.seed,
        "data_seed": args.seed,
        "learning_rate": args.learning_rate,
        "lr_scheduler_type": args.lr_scheduler,
        "warmup_steps": args.warmup_ratio,
        "weight_decay": args.weight_decay,
        "num_train_epochs": args.epochs,
        "max_steps": args.max_steps,
        "per_device_train_batch_size": args.batch_size,
        "per_device_eval_batch_size": args.batch_size,
        "gradient_accumulation_steps": args.gradient_accumulation_steps,
        "max_grad_norm": args.max_grad_norm,
        "activation_checkpointing": args.activation_checkpointing,  # trl turns it on by default
        "logging_steps": args.logging_steps,
        "logging_first_step": True,
        "save_strategy": "steps",
        "save_steps": args.save_steps,
        "save_total_limit": 2,
        "report_to": "none",
        "dataloader_num_workers": 0,
    }


def lora_config(args: StageArguments, task_type: str, model_layers: int | None = None):
    """peft LoraConfig from the stage arguments, or None for full fine-tuning.

    ``model_layers`` (the model's block count) is needed when ``args.lora_layers`` limits the adapters to the
    last blocks.
    """
    if not args.lora:
        return None
    from peft import LoraConfig

    layers = None
    if args.lora_layers:
        if model_layers is None:
            raise ValueError("lora_layers: the model's number of layers is needed to pick the last blocks")
        layers = list(range(max(0, model_layers - args.lora_layers), model_layers))
    return LoraConfig(
        r=args.lora_r,
        lora_alpha=args.lora_alpha,
        lora_dropout=args.lora_dropout,
        target_modules=args.lora_modules,
        layers_to_transform=layers,
        layers_pattern="layers" if layers is not None else None,
        task_type=task_type,
    )


def num_layers(model) -> int:
    """Transformer blocks of a (text) model."""
    return int(model.config.get_text_config().num_hidden_layers)


def save_model(model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, target: Path) -> PreTrainedModel:
    """Merge LoRA adapters (if any) and save a plain checkpoint + tokenizer atomically; returns the plain model."""
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    with atomic_path(target) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return model


def run_stage(
    kind: str,
    args: StageArguments,
    out_dir: Path,
    build: Callable[[Path], tuple[Any, PreTrainedTokenizerBase]],
    evaluate: Callable[[PreTrainedModel, str], dict[str, float]] | None,
    curve_keys: Sequence[str],
    overwrite: bool = False,
    callbacks: Sequence[TrainerCallback] = (),
) -> StageResult:
    """Train one trl stage with resume; save model, metrics, curves and the completion marker.

    Args:
        build: ``checkpoints_dir -> (trainer, tokenizer)``.
        evaluate: ``(model, "before"|"after") -> metrics`` on the held-out pairs, or None.
        curve_keys: log-history keys to plot (e.g. ``loss``, ``rewards/accuracies``).
    """
    stage = StageDir(out_dir, kind, args.to_dict())
    finished = stage.begin(overwrite=overwrite)
    if finished is not None:
        return finished
    start = time.perf_counter()
    resume = latest_checkpoint(stage.checkpoints)  # validates it: a corrupt checkpoint is a CheckpointError
    trainer, tokenizer = build(stage.checkpoints)
    for callback in callbacks:
        trainer.add_callback(callback)
    metrics: dict[str, Any] = {}
    if evaluate is not None and resume is None:
        metrics["before"] = evaluate(trainer.model, "before")
    elif evaluate is not None:
        metrics["before"] = _saved_before(stage.checkpoints)
    write_json(stage.checkpoints / "before.json", metrics.get("before", {}))
    trainer.train(resume_from_checkpoint=str(resume) if resume is not None else None)
    model = save_model(trainer.model, tokenizer, stage.model)
    if evaluate is not None:
        metrics["after"] = evaluate(model, "after")
    metrics["log_history"] = trainer.state.log_history
    metrics["global_step"] = trainer.state.global_step
    write_json(stage.root / "metrics.json", metrics)
    plot_curves(trainer.state.log_history, curve_keys, stage.root / "curves.png", title=f"{kind} ({args.model})")
    resumed = int(resume.name.split("-")[1]) if resume is not None else None
    return stage.finish(
        StageResult(kind=kind, out_dir=stage.root, metrics=metrics, seconds=time.perf_counter() - start,
                    resumed_from_step=resumed)
    )


def _saved_before(checkpoints: Path) -> dict[str, Any]:
    path = checkpoints / "before.json"
    return json.loads(path.read_text()) if path.exists() else {}
