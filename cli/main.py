"""Root of the `trustattr` command: one sub-command module per job.

User errors (bad arguments, missing files, mismatched artifacts) end the command with one line on
stderr and exit code 1; set TRUSTATTR_DEBUG=1 to see the full traceback instead.
"""

from __future__ import annotations

import os
import sys

import typer
from typer.core import TyperGroup

from trustattr.errors import TrustAttrError


class _OneLineErrors(TyperGroup):
    """Prints the library's user-facing errors as one line, `Error: ...`, and exits with code 1."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (TrustAttrError, ValueError, FileNotFoundError) as exc:
            if os.environ.get("TRUSTATTR_DEBUG") == "1":
                raise
            message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            typer.echo(f"Error: {message}", err=True)
            raise typer.Exit(1) from None


app = typer.Typer(
    name="trustattr",
    cls=_OneLineErrors,
    help="Attribute trust-benchmark changes of RLHF-tuned models to individual preference pairs.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
)

# Sub-commands: one import and one registration line each.
from trustattr.cli import bench  # noqa: E402
from trustattr.cli import score  # noqa: E402
from trustattr.cli import eval as eval_cli  # noqa: E402
from trustattr.cli import report as report_cli  # noqa: E402
from trustattr.cli import train as train_cli  # noqa: E402
from trustattr.cli import run as run_cli  # noqa: E402
from trustattr.cli import lds as lds_cli  # noqa: E402

app.add_typer(bench.app, name="bench")
app.command("score")(score.score)
app.command("eval")(eval_cli.eval_command)
app.command("report")(report_cli.report_command)
app.add_typer(train_cli.app, name="train")
app.command("run")(run_cli.run_command)
app.command("lds")(lds_cli.lds)


def main() -> None:
    """Console-script entry point."""
    app(prog_name="trustattr")


if __name__ == "__main__":
    sys.exit(main())
