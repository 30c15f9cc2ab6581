"""The root command: sub-commands are registered and user errors end in one line, exit code 1."""

from __future__ import annotations

from typer.testing import CliRunner

from trustattr.cli.main import app


def test_every_subcommand_is_registered():
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("score", "eval", "report", "train", "run", "bench"):
        assert command in result.output


def test_user_errors_are_one_line_with_exit_code_1(tmp_path):
    missing = tmp_path / "no-such-model"
    result = CliRunner().invoke(app, ["eval", "--model", str(missing), "--out", str(tmp_path / "out")])
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines[-1] == f"Error: model path '{missing}' does not exist", result.output
    assert sum(line.startswith("Error") for line in lines) == 1
    assert "Traceback" not in result.output
    assert not (tmp_path / "out").exists()
