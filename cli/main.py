"""Root of the `trustattr` command: one sub-command module per job."""

from __future__ import annotations

import sys

import typer

app = typer.Typer(
    name="trustattr",
    help="Attribute trust-benchmark changes of RLHF-tuned models to individual preference pairs.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
)


def main() -> None:
    """Console-script entry point."""
    app(prog_name="trustattr")


if __name__ == "__main__":
    sys.exit(main())
