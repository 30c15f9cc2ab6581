"""`trustattr score`: which training preference pairs moved each trust benchmark.

Every option comes from a field of :class:`trustattr.attribution.ScoreArguments` (its help text is the
field's ``help`` metadata); options left out take the value of ``--preset`` (default ``smol``).
User errors (bad arguments, data, models, modules, NaN losses) end the command with one ``Error: ...`` line
on stderr and exit code 1 (TRUSTATTR_DEBUG=1 shows the traceback).
"""

from __future__ import annotations

import inspect
import os
from typing import Any

import typer

from trustattr.attribution.arguments import PRESETS, ScoreArguments
from trustattr.cli.options import dataclass_parameters
from trustattr.errors import TrustAttrError

__all__ = ["score"]


def _parameters() -> list[inspect.Parameter]:
    return dataclass_parameters(
        ScoreArguments, PRESETS,
        f"Settings bundle: {' | '.join(PRESETS)} (tiny = random-init 2-layer model, seconds; "
        "smol = SmolLM2-135M-Instruct, the default). Explicit options override it.")


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
