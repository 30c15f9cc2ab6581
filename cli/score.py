"""`trustattr score`: which training preference pairs moved each trust benchmark.

Every option comes from a field of :class:`trustattr.attribution.ScoreArguments` (its help text is the
field's ``help`` metadata); options left out take the value of ``--preset`` (default ``smol``).
User errors (bad arguments, data, models, modules, NaN losses) end the command with one ``Error: ...`` line
on stderr and exit code 1 (TRUSTATTR_DEBUG=1 shows the traceback).
"""

from __future__ import annotations

import dataclasses
import inspect
import os
import typing
from typing import Annotated, Any

import typer

from trustattr.attribution.arguments import PRESETS, ScoreArguments
from trustattr.errors import TrustAttrError

__all__ = ["score"]


def _option_type(tp: Any) -> Any:
    """The CLI type of a field type: Optional[...] unwrapped, tuples become comma-separated text."""
    args = [t for t in typing.get_args(tp) if t is not type(None)]
    if typing.get_origin(tp) is tuple:
        return str
    if args and typing.get_origin(tp) is not tuple:
        return _option_type(args[0])
    return tp


def _default_text(name: str, default: Any) -> str:
    shown = ",".join(default) if isinstance(default, tuple) else default
    extra = [f"{preset}: {values[name]}" for preset, values in PRESETS.items() if name in values]
    return f" (default: {shown}" + (f"; preset {', '.join(extra)}" if extra else "") + ")"


def _parameters() -> list[inspect.Parameter]:
    hints = typing.get_type_hints(ScoreArguments)
    params = [inspect.Parameter(
        "preset", inspect.Parameter.KEYWORD_ONLY, default=None,
        annotation=Annotated[str | None, typer.Option(
            "--preset", help=f"Settings bundle: {' | '.join(PRESETS)} (tiny = random-init 2-layer model, seconds; "
                             "smol = SmolLM2-135M-Instruct, the default). Explicit options override it.",
            show_default=False)],
    )]
    for f in dataclasses.fields(ScoreArguments):
        flag = f"--{f.name.replace('_', '-')}"
        option = typer.Option(flag, help=f.metadata["help"] + _default_text(f.name, f.default), show_default=False)
        params.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=None,
                                        annotation=Annotated[_option_type(hints[f.name]) | None, option]))
    return params


def score(**options: Any) -> None:
    """Attribute each trust benchmark to the training preference pairs: writes scores.npz, summary.json,
    report.md and score_distributions.png to --out."""
    from trustattr.attribution.pipeline import score as run_score

    preset = options.pop("preset", None)
    try:
        args = ScoreArguments.from_preset(preset, **options)
        result = run_score(args, log=typer.echo)
    except (TrustAttrError, ValueError) as exc:
        if os.environ.get("TRUSTATTR_DEBUG") == "1":
            raise
        typer.echo(f"Error: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}", err=True)
        raise typer.Exit(1) from None
    if result is not None:
        typer.echo(f"wrote {result.out_dir}/scores.npz, summary.json, report.md, score_distributions.png")


score.__signature__ = inspect.Signature(_parameters())  # type: ignore[attr-defined]
