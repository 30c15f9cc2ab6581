"""A small stage runner: ordered stages, status in ``RUN/run.json``, skip what is complete, refuse mismatches.

A :class:`Stage` declares the arguments its output depends on, a ``run`` function (which must itself be
resumable and write its files atomically) and a ``done`` check of its outputs. On a rerun a stage is skipped
when ``run.json`` records it complete with equal arguments and its outputs exist; recorded arguments that
differ raise ArgumentsMismatchError naming each difference. Adding a stage is one more list entry.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from rich.console import Console

from trustattr.errors import ArgumentsMismatchError, CheckpointError
from trustattr.train.stage_dir import arguments_difference, write_json

__all__ = ["Stage", "StageRunner"]


@dataclass
class Stage:
    """One step of a run."""

    name: str
    arguments: dict[str, Any]  # what the output depends on; compared on reruns
    run: Callable[[], dict[str, Any]]  # does the work, returns a small JSON-able summary
    done: Callable[[], bool]  # True when the outputs are on disk
    needs: tuple[str, ...] = ()  # stages whose outputs this one reads


class StageRunner:
    """Runs stages in order under ``run_dir``, recording status in ``run_dir/run.json``."""

    def __init__(self, run_dir: Path, run_arguments: dict[str, Any], console: Console | None = None):
        self.run_dir = Path(run_dir)
        self.run_arguments = _jsonable(run_arguments)
        self.console = console or Console(stderr=True)
        self.status_path = self.run_dir / "run.json"

    def load_status(self) -> dict[str, Any]:
        if not self.status_path.exists():
            return {"arguments": self.run_arguments, "stages": {}}
        try:
            return json.loads(self.status_path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise CheckpointError(f"'{self.status_path}' is corrupt ({exc}); delete it or use --overwrite") from exc

    def run(self, stages: Sequence[Stage], only: Sequence[str] | None = None, overwrite: bool = False) -> dict[str, Any]:
        """Run ``stages`` (or the subset ``only``); returns the status dict written to run.json."""
        names = [stage.name for stage in stages]
        unknown = sorted(set(only or ()) - set(names))
        if unknown:
            raise ValueError(f"stages: unknown stage(s) {', '.join(unknown)}; known: {', '.join(names)}")
        if overwrite and self.run_dir.exists():
            shutil.rmtree(self.run_dir)
        status = self.load_status()
        status["arguments"] = self.run_arguments
        selected = [stage for stage in stages if only is None or stage.name in only]
        self._check_arguments(selected, status)
        for number, stage in enumerate(selected, start=1):
            label = f"[{number}/{len(selected)}] {stage.name}"
            record = status["stages"].get(stage.name, {})
            if record.get("status") == "complete" and stage.done():
                self.console.print(f"{label}: complete, skipped")
                continue
            self._check_needs(stage, status)
            self.console.print(f"{label}: running")
            record = {"status": "running", "arguments": _jsonable(stage.arguments), "started_at": _now()}
            status["stages"][stage.name] = record
            write_json(self.status_path, status)
            start = time.perf_counter()
            try:
                summary = stage.run()
            except BaseException as exc:  # record interrupts too, then re-raise
                record.update(status="failed", error=f"{type(exc).__name__}: {exc}".splitlines()[0][:500])
                write_json(self.status_path, status)
                raise
            seconds = time.perf_counter() - start
            record.update(status="complete", seconds=seconds, finished_at=_now(), summary=_jsonable(summary))
            write_json(self.status_path, status)
            self.console.print(f"{label}: done in {seconds:.1f} s")
        return status

    def _check_arguments(self, stages: Sequence[Stage], status: dict[str, Any]) -> None:
        for stage in stages:
            recorded = status["stages"].get(stage.name)
            if recorded is None or recorded.get("status") == "failed":
                continue
            now = _jsonable(stage.arguments)
            if recorded.get("arguments") != now:
                changes = arguments_difference(recorded.get("arguments", {}), now)
                raise ArgumentsMismatchError(
                    f"stage '{stage.name}' in '{self.run_dir}' was run with other arguments "
                    f"({'; '.join(changes)}); use another --out or --overwrite"
                )

    @staticmethod
    def _check_needs(stage: Stage, status: dict[str, Any]) -> None:
        for need in stage.needs:
            if status["stages"].get(need, {}).get("status") != "complete":
                raise CheckpointError(f"stage '{stage.name}' needs stage '{need}', which is not complete; run it first")


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
