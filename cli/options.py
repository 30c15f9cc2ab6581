"""Command-line options generated from an arguments dataclass: one ``--flag`` per field, help from its metadata.

Used by ``trustattr score`` (ScoreArguments) and ``trustattr lds`` (LDSArguments): options left out are None
and take the preset's or the field's default when the dataclass is built with ``from_preset``.
"""

from __future__ import annotations

import dataclasses
import inspect
import typing
from typing import Annotated, Any

import typer

__all__ = ["dataclass_parameters"]


def _option_type(tp: Any) -> Any:
    """The CLI type of a field type: Optional[...] unwrapped, tuples become comma-separated text."""
    args = [t for t in typing.get_args(tp) if t is not type(None)]
    if typing.get_origin(tp) is tuple:
        return str
    if args and typing.get_origin(tp) is not tuple:
        return _option_type(args[0])
    return tp


def _default_text(name: str, default: Any, presets: dict[str, dict[str, Any]]) -> str:
    shown = ",".join(default) if isinstance(default, tuple) else default
    extra = [f"{preset}: {values[name]}" for preset, values in presets.items() if name in values]
    return f" (default: {shown}" + (f"; preset {', '.join(extra)}" if extra else "") + ")"


def dataclass_parameters(cls: type, presets: dict[str, dict[str, Any]], preset_help: str | None,
                         skip: tuple[str, ...] = ()) -> list[inspect.Parameter]:
    """Keyword parameters (a ``--preset`` first when ``preset_help``) for a typer command built from ``cls``."""
    hints = typing.get_type_hints(cls)
    params = []
    if preset_help is not None:
        params.append(inspect.Parameter(
            "preset", inspect.Parameter.KEYWORD_ONLY, default=None,
            annotation=Annotated[str | None, typer.Option("--preset", help=preset_help, show_default=False)]))
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        flag = f"--{f.name.replace('_', '-')}"
        option = typer.Option(flag, help=f.metadata["help"] + _default_text(f.name, f.default, presets),
                              show_default=False)
        params.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=None,
                                        annotation=Annotated[_option_type(hints[f.name]) | None, option]))
    return params
