"""Files of one benchmark run: atomic JSON / JSONL writes and an append-only checkpoint for resuming.

Layout of ``out_dir/<benchmark>/``:
    outputs.jsonl          one JSON per generation (final, written atomically once every batch is done)
    <extra>.jsonl          non-generation records (log-likelihoods, scorer validation), if any
    metrics.json           {"settings": ..., "metrics": ..., ...} (written last: its presence means "done")
    breakdown.json         nested results (stereotype: per group x topic), if any
    checkpoint.jsonl       while running: a header line with the settings, then one line per finished batch
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from trustattr.paths import atomic_path

__all__ = ["BatchCheckpoint", "json_safe", "read_json", "read_jsonl_records", "write_json", "write_jsonl"]


def json_safe(value: Any) -> Any:
    """NaN/inf are not JSON: write them as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    return value


def write_json(path: Path, data: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(json_safe(data), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def write_jsonl(path: Path, records: Iterable[dict[str, Any]]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(json_safe(record), ensure_ascii=False) + "\n")


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def read_jsonl_records(path: Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


class BatchCheckpoint:
    """Finished batches of a generation run, so an interrupted run continues where it stopped.

    The first line holds the run's settings; a checkpoint made with other settings is discarded. A torn last
    line (the process was killed mid-write) is ignored, and that batch is generated again.
    """

    def __init__(self, path: Path, settings: dict[str, Any]) -> None:
        self.path = Path(path)
        self.settings = json.loads(json.dumps(json_safe(settings)))  # the form it takes once read back
        self.done: dict[int, list[dict[str, Any]]] = self._load()

    def _load(self) -> dict[int, list[dict[str, Any]]]:
        if not self.path.exists():
            return {}
        done: dict[int, list[dict[str, Any]]] = {}
        with open(self.path, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
        try:
            header = json.loads(lines[0]) if lines else None
        except json.JSONDecodeError:
            header = None
        if not header or header.get("settings") != self.settings:
            self.path.unlink()
            return {}
        kept = 1
        for line in lines[1:]:
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                break  # torn final line
            done[int(entry["batch"])] = entry["records"]
            kept += 1
        if kept < len(lines):  # drop the torn line, so later appends start on a fresh line
            with atomic_path(self.path) as tmp:
                tmp.write_text("".join(line + "\n" for line in lines[:kept]), encoding="utf-8")
        return done

    def append(self, batch: int, records: list[dict[str, Any]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fresh = not self.path.exists()
        with open(self.path, "a", encoding="utf-8") as handle:
            if fresh:
                handle.write(json.dumps({"settings": self.settings}) + "\n")
            handle.write(json.dumps(json_safe({"batch": batch, "records": records}), ensure_ascii=False) + "\n")
            handle.flush()
        self.done[batch] = records

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
