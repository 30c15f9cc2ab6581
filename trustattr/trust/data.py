"""Reading benchmark data: the files shipped in ``trustattr/data``, a user's local file, or a ``datasets`` name.

Every loader returns a list of plain dict rows and raises :class:`trustattr.errors.DataError` naming the file,
the row and the field when something is missing, so a user with the full sets gets a one-line explanation.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from trustattr.errors import DataError
from trustattr.paths import DATA_DIR

__all__ = ["DATA_DIR", "load_rows", "read_csv", "read_jsonl", "require"]


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    rows = []
    try:
        with open(path, encoding="utf-8-sig") as handle:
            for number, line in enumerate(handle, start=1):
                if line.strip():
                    rows.append(_object(json.loads(line), path, number))
    except json.JSONDecodeError as exc:
        raise DataError(f"data file '{path}', line {number}: not valid JSON ({exc})") from exc
    except OSError as exc:
        raise DataError(f"data file '{path}' cannot be read: {exc}") from exc
    return rows


def read_json(path: Path) -> list[dict[str, Any]]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8-sig"))
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"data file '{path}' cannot be read as JSON: {exc}") from exc
    if isinstance(data, dict):  # {key: value} files, e.g. email2name.json
        return [{"key": key, "value": value} for key, value in data.items()]
    if not isinstance(data, list):
        raise DataError(f"data file '{path}': expected a JSON list of objects, got {type(data).__name__}")
    return [_object(row, path, index + 1) for index, row in enumerate(data)]


def read_csv(path: Path) -> list[dict[str, Any]]:
    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            return list(csv.DictReader(handle))
    except (OSError, csv.Error) as exc:
        raise DataError(f"data file '{path}' cannot be read as CSV: {exc}") from exc


def _object(row: Any, path: Path, number: int) -> dict[str, Any]:
    if not isinstance(row, dict):
        raise DataError(f"data file '{path}', row {number}: expected a JSON object, got {type(row).__name__}")
    return row


def load_rows(shipped: str, source: str | None = None) -> tuple[list[dict[str, Any]], str]:
    """Rows of the shipped file ``DATA_DIR/shipped`` or of ``source``; returns (rows, where they came from).

    ``source`` is a local ``.jsonl`` / ``.json`` / ``.csv`` path, or a ``datasets`` hub name with optional
    ``:config`` and ``@split`` (``"truthful_qa:multiple_choice@validation"``) for users with network access.
    """
    if source is None:
        path = DATA_DIR / shipped
        if not path.exists():
            raise DataError(f"shipped data file '{path}' is missing; reinstall trustattr")
        origin = f"trustattr/data/{shipped}"
    else:
        path = Path(os.path.expanduser(source))
        origin = source
        if not path.exists():
            if path.suffix in (".jsonl", ".json", ".csv") or source.startswith((".", "/", "~")):
                raise DataError(f"data file '{source}' does not exist")
            rows = _load_hub(source)
            if not rows:
                raise DataError(f"dataset '{source}' is empty")
            return rows, origin
    readers = {".jsonl": read_jsonl, ".json": read_json, ".csv": read_csv}
    reader = readers.get(path.suffix)
    if reader is None:
        raise DataError(f"data file '{path}': expected a .jsonl, .json or .csv file, got '{path.suffix}'")
    rows = reader(path)
    if not rows:
        raise DataError(f"data file '{origin}' has no rows")
    return rows, origin


def _load_hub(source: str) -> list[dict[str, Any]]:
    name, _, split = source.partition("@")
    name, _, config = name.partition(":")
    try:
        import datasets

        dataset = datasets.load_dataset(name, config or None, split=split or None)
    except Exception as exc:  # datasets raises many types (ConnectionError, DatasetNotFoundError, ValueError)
        raise DataError(
            f"data source '{source}' is not a local file and could not be loaded with datasets.load_dataset: {exc}"
        ) from exc
    if isinstance(dataset, dict):  # no split given: take the first one
        dataset = next(iter(dataset.values()))
    return [dict(row) for row in dataset]


def require(rows: Iterable[dict[str, Any]], fields: tuple[str, ...], origin: str) -> None:
    """Raise DataError naming the first row that lacks one of ``fields``."""
    for number, row in enumerate(rows, start=1):
        missing = [name for name in fields if row.get(name) in (None, "")]
        if missing:
            raise DataError(
                f"data '{origin}', row {number}: missing field(s) {', '.join(missing)} "
                f"(fields present: {', '.join(sorted(row))})"
            )
