"""`trustattr eval`: the five trust benchmarks on one or more models (stages), offline."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from trustattr.trust.arguments import EvalArguments, help_for, parse_models, parse_settings
from trustattr.trust.base import BENCHMARKS
from trustattr.trust.scorers import SCORERS

DEFAULT_LIMIT = 100


def eval_command(
    model: Annotated[list[str], typer.Option("--model", "-m", help=help_for("models"))],
    benchmarks: Annotated[str, typer.Option(help=help_for("benchmarks"))] = ",".join(BENCHMARKS),
    limit: Annotated[Optional[int], typer.Option(
        help=help_for("limit") + f" [default: {DEFAULT_LIMIT}, all with --full]")] = None,
    protocol: Annotated[str, typer.Option(help=help_for("protocol"))] = "fast",
    full: Annotated[bool, typer.Option("--full", help="full-size run: the paper protocol on every prompt "
                                                      "(= --protocol paper --limit 0)")] = False,
    out: Annotated[Path, typer.Option("--out", "-o", help=help_for("out_dir"))] = Path("trust-eval"),
    seed: Annotated[int, typer.Option(help=help_for("seed"))] = 0,
    batch_size: Annotated[int, typer.Option(help=help_for("batch_size"))] = 16,
    chat_template: Annotated[Optional[bool], typer.Option(
        "--chat-template/--no-chat-template", help=help_for("use_chat_template"))] = None,
    dtype: Annotated[str, typer.Option(help=help_for("dtype"))] = "float32",
    device: Annotated[str, typer.Option(help=help_for("device"))] = "auto",
    threads: Annotated[Optional[int], typer.Option(help=help_for("threads"))] = None,
    toxicity_scorer: Annotated[Optional[str], typer.Option(
        help=f"toxicity scorer: {', '.join(SCORERS)} [default: profanity-check]")] = None,
    perspective_key: Annotated[Optional[str], typer.Option(
        envvar="PERSPECTIVE_API_KEY", show_envvar=True,
        help="Perspective API key (only used with --toxicity-scorer perspective)")] = None,
    settings: Annotated[Optional[list[str]], typer.Option("--set", help=help_for("overrides"))] = None,
    overwrite: Annotated[bool, typer.Option(help=help_for("overwrite"))] = False,
) -> None:
    """Evaluate models on toxicity, stereotype bias, machine ethics, truthfulness and privacy.

    Writes OUT/results.json, OUT/results.md, OUT/results.png and OUT/<benchmark>/outputs.jsonl per model;
    with several models OUT/<label>/... per model plus OUT/stages.md and OUT/stages.png.
    """
    from trustattr.trust.stages import evaluate_models

    if full and (limit is not None or protocol != "fast"):
        raise typer.BadParameter("--full already means --protocol paper --limit 0; drop one of them")
    overrides = parse_settings(settings or [])
    if toxicity_scorer is not None:
        overrides.setdefault("toxicity", {})["scorer"] = toxicity_scorer
    if perspective_key:
        overrides.setdefault("toxicity", {})["perspective_api_key"] = perspective_key
    resolved_limit = None if full else (DEFAULT_LIMIT if limit is None else limit) or None
    args = EvalArguments(
        models=parse_models(model), out_dir=out, benchmarks=tuple(b.strip() for b in benchmarks.split(",") if b.strip()),
        limit=resolved_limit, protocol="paper" if full else protocol, seed=seed, batch_size=batch_size,
        use_chat_template=chat_template, dtype=dtype, device=device, threads=threads, overrides=overrides,
        overwrite=overwrite,
    )
    evaluate_models(args, log=typer.echo)
    several = len(args.models) > 1
    typer.echo(f"\nwrote {out / 'stages.md' if several else out / 'results.md'}")
    typer.echo((out / ("stages.md" if several else "results.md")).read_text(encoding="utf-8").split("\n## ")[0])
