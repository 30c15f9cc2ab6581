"""`trustattr train sft|dpo|rm|ppo`: one training stage, options generated from its arguments dataclass.

Every option defaults to the value of ``--preset`` (tiny or smol); the help text of each option is the
``metadata["help"]`` of the dataclass field, so the CLI and the Python API never drift apart.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import json
import os
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from trustattr.errors import TrustAttrError
from trustattr.train.config import STAGE_ARGUMENTS, StageArguments
from trustattr.train.presets import PRESETS, get_preset

app = typer.Typer(
    help="Train one RLHF stage (SFT, DPO, reward model, PPO) on preference pairs; offline by default.",
    no_args_is_help=True,
)

STAGE_HELP = {
    "sft": "Supervised fine-tuning on the chosen responses (trl SFTTrainer).",
    "dpo": "DPO against the starting model as reference (trl DPOTrainer, beta 0.1).",
    "rm": "Bradley-Terry reward model: a scalar head on the starting model (trl RewardTrainer).",
    "ppo": "The compact PPO against a trained reward model (needs --reward-model).",
}
NONE_WORDS = ("none", "all")


def option_parameters(cls: type, preset_values: Any) -> list[inspect.Parameter]:
    """One keyword parameter (typer option) per dataclass field; default None = keep the preset's value."""
    hints = typing.get_type_hints(cls)
    parameters = []
    for spec in dataclasses.fields(cls):
        kind = hints[spec.name]
        flag = "--" + spec.name.replace("_", "-")
        shown = getattr(preset_values, spec.name, spec.default)
        help_text = f"{spec.metadata.get('help', '')} (tiny preset: {shown})"
        if kind is bool:
            option = typer.Option(f"{flag}/--no-{flag[2:]}", help=help_text, show_default=False)
            annotation = Annotated[bool | None, option]
        elif _is_optional(kind):
            option = typer.Option(flag, help=help_text, show_default=False)
            annotation = Annotated[str | None, option]
        else:
            option = typer.Option(flag, help=help_text, show_default=False)
            annotation = Annotated[kind | None, option]
        parameters.append(inspect.Parameter(spec.name, inspect.Parameter.KEYWORD_ONLY, default=None,
                                            annotation=annotation))
    return parameters


def _is_optional(kind: Any) -> bool:
    return typing.get_origin(kind) in (typing.Union, types.UnionType)


def given_values(cls: type, values: dict[str, Any]) -> dict[str, Any]:
    """The options the user gave, converted to the field types ("none"/"all" → None for optional ints)."""
    hints = typing.get_type_hints(cls)
    out = {}
    for name, value in values.items():
        if value is None:
            continue
        if isinstance(value, str) and _is_optional(hints[name]):
            if value.lower() in NONE_WORDS:
                value = None
            else:
                try:
                    value = int(value)
                except ValueError:
                    raise typer.BadParameter(
                        f"expected an integer or one of {'/'.join(NONE_WORDS)}, got {value!r}",
                        param_hint="--" + name.replace("_", "-"),
                    ) from None
        out[name] = value
    return out


def stage_arguments(kind: str, preset: str, values: dict[str, Any]) -> StageArguments:
    """The preset's arguments for ``kind`` with the given options applied (validated)."""
    base = getattr(get_preset(preset), kind)
    return dataclasses.replace(base, **given_values(STAGE_ARGUMENTS[kind], values))


@contextlib.contextmanager
def one_line_errors() -> Iterator[None]:
    """User errors (bad arguments, data, checkpoints) end the command with one line and exit code 1.

    (Done here because cli/main.py's handler raises click's ClickException, which typer's own click does not
    catch.) TRUSTATTR_DEBUG=1 shows the traceback instead.
    """
    try:
        yield
    except (TrustAttrError, ValueError) as exc:
        if os.environ.get("TRUSTATTR_DEBUG") == "1":
            raise
        typer.echo(f"Error: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}", err=True)
        raise typer.Exit(1) from None


def _run_stage(kind: str, args: StageArguments, out: Path, overwrite: bool, attribution_every: int) -> None:
    from trustattr.train.hooks import attribution_callback
    from trustattr.train.stages import train_stage

    callbacks = [attribution_callback(kind, args, out, attribution_every)] if attribution_every else []
    result = train_stage(kind, args, out, overwrite=overwrite, callbacks=callbacks)
    state = "already complete, skipped" if result.skipped else f"done in {result.seconds:.1f} s"
    resumed = f" (resumed from step {result.resumed_from_step})" if result.resumed_from_step else ""
    typer.echo(f"{kind}: {state}{resumed}; model: {result.model_dir}")
    for when in ("before", "after"):
        if result.metrics.get(when):
            typer.echo(f"  held-out {when}: {json.dumps(result.metrics[when], sort_keys=True)}")


def _make_command(kind: str):
    cls = STAGE_ARGUMENTS[kind]
    field_names = [spec.name for spec in dataclasses.fields(cls)]

    def command(**kwargs: Any) -> None:
        out, preset, overwrite = kwargs.pop("out"), kwargs.pop("preset"), kwargs.pop("overwrite")
        attribution_every = kwargs.pop("attribution_every", 0)
        with one_line_errors():
            if attribution_every < 0:
                raise ValueError(f"attribution_every: expected an integer >= 0, got {attribution_every}")
            args = stage_arguments(kind, preset, {name: kwargs[name] for name in field_names})
            _run_stage(kind, args, out, overwrite, attribution_every)

    fixed = [
        inspect.Parameter("out", inspect.Parameter.KEYWORD_ONLY, annotation=Annotated[
            Path, typer.Option("--out", help="output directory (rerunning resumes from its last checkpoint)")]),
        inspect.Parameter("preset", inspect.Parameter.KEYWORD_ONLY, default="tiny", annotation=Annotated[
            str, typer.Option("--preset", help=f"defaults for every option: {' | '.join(PRESETS)}")]),
        inspect.Parameter("overwrite", inspect.Parameter.KEYWORD_ONLY, default=False, annotation=Annotated[
            bool, typer.Option("--overwrite", help="delete OUT first instead of resuming / refusing changed arguments")]),
    ]
    if kind in ("sft", "dpo"):
        fixed.append(inspect.Parameter("attribution_every", inspect.Parameter.KEYWORD_ONLY, default=0, annotation=Annotated[
            int, typer.Option("--attribution-every", help="every N steps and at the end, save a checkpoint + projected "
                              "gradient features of the train/held-out pairs to OUT/attribution (0 = off)")]))
    command.__signature__ = inspect.Signature(fixed + option_parameters(cls, getattr(get_preset("tiny"), kind)))
    command.__doc__ = STAGE_HELP[kind]
    command.__name__ = f"train_{kind}"
    return command


for _kind in STAGE_ARGUMENTS:
    app.command(name=_kind, help=STAGE_HELP[_kind])(_make_command(_kind))
