"""Evaluating several models (stages such as base, sft, dpo, ppo) and comparing them side by side."""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

import torch

from trustattr.paths import atomic_path
from trustattr.trust.arguments import EvalArguments
from trustattr.trust.evaluate import Log, evaluate
from trustattr.trust.plots import plot_stage_bars
from trustattr.trust.store import read_json
from trustattr.trust.tables import stages_markdown

__all__ = ["evaluate_models", "resolve_device", "write_stage_comparison"]


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} was asked for, but torch sees no CUDA device")
    return torch.device(device)


def evaluate_models(args: EvalArguments, log: Log | None = None, progress: bool = True) -> dict[str, dict[str, Any]]:
    """Evaluate each model of ``args.models`` (one at a time, to bound memory); returns {label: {bench: metrics}}.

    One model writes straight into ``args.out_dir``; several write ``out_dir/<label>/`` each, then
    ``out_dir/stages.md`` and ``out_dir/stages.png`` compare them.
    """
    from trustattr.models import load_model

    device = resolve_device(args.device)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    several = len(args.models) > 1
    results = {}
    for label, spec in args.models:
        if log:
            log(f"[{label}] loading {spec}")
        model, tokenizer = load_model(spec, dtype=dtype, seed=args.seed)
        model.to(device)
        results[label] = evaluate(
            model, tokenizer, out_dir=args.out_dir / label if several else args.out_dir,
            benchmarks=args.benchmarks, limit=args.limit, seed=args.seed, batch_size=args.batch_size,
            use_chat_template=args.use_chat_template, protocol=args.protocol, model_name=spec,
            overwrite=args.overwrite, progress=progress, log=log, **args.overrides,
        )
        del model
        gc.collect()
    if several:
        write_stage_comparison(args.out_dir, [label for label, _ in args.models])
    return results


def write_stage_comparison(eval_dir: Path, labels: list[str]) -> tuple[Path, Path]:
    """stages.md (key metrics per stage) and stages.png (headline bars) from ``eval_dir/<label>/results.json``."""
    stages = {label: read_json(Path(eval_dir) / label / "results.json") for label in labels}
    table = Path(eval_dir) / "stages.md"
    with atomic_path(table) as tmp:
        tmp.write_text("# Trust metrics per stage\n\n" + stages_markdown(stages), encoding="utf-8")
    return table, plot_stage_bars(stages, Path(eval_dir) / "stages.png")
