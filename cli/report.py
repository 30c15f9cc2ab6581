"""`trustattr report RUN_DIR`: a run's trust evaluations and attribution scores on one Markdown page."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def report_command(
    run_dir: Annotated[Path, typer.Argument(help="run folder (RUN/eval/<stage>/results.json, RUN/score/<stage>/...)")],
) -> None:
    """Render RUN/report.md and RUN/report_stages.png from the run's evaluations and attribution scores."""
    from trustattr.trust.run_report import render_run_report

    path = render_run_report(run_dir)
    typer.echo(f"wrote {path}")
