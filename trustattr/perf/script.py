"""The command line of a ``benchmarks/bench_*.py`` script, built from its arguments dataclass.

Every field becomes an option (``score_rows`` -> ``--score-rows``) whose help is the field's
``metadata["help"]``, so the dataclass stays the single source of both defaults and help: ints,
floats and strings as themselves, lists as comma-separated values, a boolean that defaults to True
as ``--no-<name>`` (False: ``--<name>``). ``bench_main`` parses, runs, prints the machine and the
markdown table, and writes the raw result as JSON (``--out``, atomically).

    bench_main(LayersBenchArguments, run, markdown, __doc__)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import typing
from collections.abc import Callable, Sequence
from pathlib import Path

from trustattr.paths import atomic_path

__all__ = ["bench_main", "build_parser", "parse_arguments"]


def _option(name: str) -> str:
    return "--" + name.replace("_", "-")


def _default(f: dataclasses.Field) -> object:
    if f.default is not dataclasses.MISSING:
        return f.default
    return f.default_factory()  # type: ignore[misc]


_ITEM_NAMES = {int: "integers", float: "numbers"}


def _list_parser(option: str, item: type) -> Callable[[str], list]:
    def parse(text: str) -> list:
        try:
            return [item(v.strip()) for v in text.split(",") if v.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{option} must be comma-separated {_ITEM_NAMES.get(item, 'values')}, got '{text}'") from None

    return parse


def _with_default(text: str, default: str) -> str:
    return text if default == "" or "default" in text else f"{text} (default {default})"


def build_parser(arguments: type, description: str) -> argparse.ArgumentParser:
    """An argparse parser with one option per field of the dataclass ``arguments``, plus ``--out``."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    hints = typing.get_type_hints(arguments)
    for f in dataclasses.fields(arguments):
        kind, default, text = hints[f.name], _default(f), f.metadata.get("help", "").replace("%", "%%")
        if kind is bool:
            if default:
                parser.add_argument(_option("no_" + f.name), dest=f.name, action="store_false", help=f"do not {text}")
            else:
                parser.add_argument(_option(f.name), dest=f.name, action="store_true", help=text)
        elif typing.get_origin(kind) is list:
            (item,) = typing.get_args(kind)
            parser.add_argument(_option(f.name), dest=f.name, type=_list_parser(_option(f.name), item),
                                default=list(default),
                                help=_with_default(f"{text}, comma-separated", ",".join(map(str, default))))
        else:
            parser.add_argument(_option(f.name), dest=f.name, type=kind, default=default,
                                help=_with_default(text, str(default)))
    parser.add_argument("--out", type=Path, default=None, help="write the raw results as JSON here")
    return parser


def parse_arguments(arguments: type, description: str, argv: Sequence[str] | None = None) -> tuple[object, Path | None]:
    """The dataclass instance and the ``--out`` path of a command line; a field the dataclass refuses
    ends the program with its message (exit status 2), like any bad option."""
    parser = build_parser(arguments, description)
    ns = vars(parser.parse_args(argv))
    out = ns.pop("out")
    try:
        return arguments(**ns), out
    except ValueError as exc:
        parser.error(str(exc))


def bench_main(arguments: type, run: Callable[[object], dict], markdown: Callable[[dict], str], description: str,
               argv: Sequence[str] | None = None) -> dict:
    """Parse the command line, run the benchmark, print the machine and the table, save the JSON."""
    args, out = parse_arguments(arguments, description, argv)
    result = run(args)
    print(f"machine: {result['machine']}")
    print(markdown(result))
    if out is not None:
        with atomic_path(out) as tmp:
            tmp.write_text(json.dumps(result, indent=2))
    return result
