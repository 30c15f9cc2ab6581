"""`trustattr lds`: which attribution method ranks training pairs best — the linear datamodeling score.

Every option comes from a field of :class:`trustattr.lds.arguments.LDSArguments`. Writes lds.json, lds.md and
lds.png to --out; retrains are cached under --out/work and a rerun resumes them.
"""

from __future__ import annotations

import inspect
from typing import Any

import typer

from trustattr.cli.options import dataclass_parameters
from trustattr.lds.arguments import PRESETS, LDSArguments

__all__ = ["lds"]


def lds(**options: Any) -> None:
    """Retrain on random subsets and measure how well each attribution method predicts the queries' margins."""
    from trustattr.lds.run import run_lds

    args = LDSArguments.from_preset(**{k: v for k, v in options.items() if v is not None})
    result = run_lds(args, log=typer.echo)
    best = result.best()
    typer.echo(f"best: {best['label']} ({best['features']}) LDS {best['lds']:.3f} "
               f"[{best['ci95'][0]:.3f}, {best['ci95'][1]:.3f}]")
    typer.echo(f"wrote {result.out}/lds.json, lds.md, lds.png")


lds.__signature__ = inspect.Signature(dataclass_parameters(  # type: ignore[attr-defined]
    LDSArguments, PRESETS, None))
