"""`trustattr run`: the paper end to end on a preset (base → SFT → DPO, SFT → RM → PPO, trust benchmarks)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated

import typer

from trustattr.cli.train import one_line_errors
from trustattr.train.pipeline import RunArguments


def _help(name: str) -> str:
    return next(f.metadata["help"] for f in dataclasses.fields(RunArguments) if f.name == name)


def _words(text: str | None) -> tuple[str, ...] | None:
    return tuple(w.strip() for w in text.split(",") if w.strip()) if text else None


def run_command(
    out: Annotated[Path, typer.Option("--out", help=_help("out"))],
    preset: Annotated[str, typer.Option(help=_help("preset"))] = "tiny",
    model: Annotated[str | None, typer.Option(help=_help("model"))] = None,
    eval_limit: Annotated[int | None, typer.Option("--eval-limit", "--limit", help=_help("eval_limit"))] = None,
    benchmarks: Annotated[str | None, typer.Option(help=_help("benchmarks") + ", comma-separated")] = None,
    evaluate: Annotated[bool, typer.Option("--evaluate/--no-evaluate", help=_help("evaluate"))] = True,
    attribute: Annotated[bool, typer.Option("--attribute/--no-attribute", help=_help("attribute"))] = True,
    method: Annotated[str, typer.Option(help=_help("method"))] = "datainf",
    seed: Annotated[int, typer.Option(help=_help("seed"))] = 0,
    stages: Annotated[str | None, typer.Option(help="run only these stages, comma-separated (e.g. base,sft)")] = None,
    overwrite: Annotated[bool, typer.Option(help="delete OUT first instead of resuming it")] = False,
) -> None:
    """Run the paper's pipeline; each finished stage is cached in OUT and skipped when rerun."""
    from trustattr.train.pipeline import run_pipeline

    with one_line_errors():
        args = RunArguments(out=out, preset=preset, model=model, eval_limit=eval_limit,
                            benchmarks=_words(benchmarks), evaluate=evaluate, attribute=attribute,
                            method=method, seed=seed)
        status = run_pipeline(args, only=list(_words(stages)) if stages else None, overwrite=overwrite)
    done = sum(1 for record in status["stages"].values() if record.get("status") == "complete")
    typer.echo(f"run: {done} stage(s) complete in {out}; see {out / 'summary.md'} and {out / 'curves.png'}")
