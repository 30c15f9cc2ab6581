"""The output directory of one training stage, and its checkpoints.

Layout of ``OUT`` (the same for ``trustattr train <stage> --out OUT`` and ``RUN/stages/<stage>``)::

    OUT/arguments.json     the stage's arguments, written before training; a rerun must match them
    OUT/checkpoints/       resumable checkpoints (checkpoint-<step>/, trainer_state.json inside)
    OUT/model/             the final model (LoRA merged), with its tokenizer
    OUT/metrics.json       loss/reward curves and the before/after evaluation
    OUT/curves.png         the curves, plotted
    OUT/stage.json         written last: the stage is complete

Every file is written atomically (``trustattr.paths.atomic_path``).
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trustattr.errors import ArgumentsMismatchError, CheckpointError
from trustattr.paths import atomic_path

__all__ = [
    "StageDir",
    "StageResult",
    "arguments_difference",
    "latest_checkpoint",
    "validate_checkpoint",
    "validate_model_dir",
    "write_json",
]

CHECKPOINT_PATTERN = re.compile(r"^checkpoint-(\d+)$")
WEIGHT_FILES = ("model.safetensors", "adapter_model.safetensors", "model.safetensors.index.json")


@dataclass
class StageResult:
    """What a finished stage hands to the next one."""

    kind: str
    out_dir: Path
    metrics: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    resumed_from_step: int | None = None
    skipped: bool = False

    @property
    def model_dir(self) -> Path:
        return self.out_dir / "model"


def write_json(path: Path, payload: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")


def arguments_difference(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Human-readable differences ``name: old -> new`` between two argument dicts."""
    names = sorted(set(old) | set(new))
    return [f"{n}: {old.get(n, '<unset>')!r} -> {new.get(n, '<unset>')!r}" for n in names if old.get(n) != new.get(n)]


class StageDir:
    """Arguments check, completion marker and checkpoint lookup for one stage output directory."""

    def __init__(self, out_dir: Path, kind: str, arguments: dict[str, Any]):
        self.root = Path(out_dir)
        self.kind = kind
        self.arguments = json.loads(json.dumps(arguments, default=str))  # compare as stored on disk

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def model(self) -> Path:
        return self.root / "model"

    def begin(self, overwrite: bool = False) -> StageResult | None:
        """Check the directory before training. Returns the finished result when there is nothing to do.

        Raises ArgumentsMismatchError when the directory holds a run with other arguments (unless ``overwrite``).
        """
        if overwrite and self.root.exists():
            shutil.rmtree(self.root)
        saved_path = self.root / "arguments.json"
        if saved_path.exists() and self._has_results():
            saved = self._read_json(saved_path)
            if saved.get("kind") != self.kind or saved.get("arguments") != self.arguments:
                changes = arguments_difference(saved.get("arguments", {}), self.arguments)
                if saved.get("kind") != self.kind:
                    changes.insert(0, f"kind: {saved.get('kind')!r} -> {self.kind!r}")
                raise ArgumentsMismatchError(
                    f"'{self.root}' holds a {saved.get('kind')} run with other arguments ({'; '.join(changes)}); "
                    "use another output directory or --overwrite"
                )
        else:  # nothing to protect yet (no checkpoint, no result): (re)start with these arguments
            write_json(saved_path, {"kind": self.kind, "arguments": self.arguments})
        marker = self.root / "stage.json"
        if not marker.exists():
            return None
        done = self._read_json(marker)
        validate_model_dir(self.model)
        return StageResult(
            kind=self.kind,
            out_dir=self.root,
            metrics=done.get("metrics", {}),
            seconds=float(done.get("seconds", 0.0)),
            resumed_from_step=done.get("resumed_from_step"),
            skipped=True,
        )

    def _has_results(self) -> bool:
        has_checkpoint = self.checkpoints.is_dir() and any(self.checkpoints.glob("checkpoint-*"))
        return has_checkpoint or (self.root / "stage.json").exists()

    def finish(self, result: StageResult) -> StageResult:
        """Write the completion marker (after the model and metrics are in place)."""
        validate_model_dir(self.model)
        write_json(
            self.root / "stage.json",
            {
                "kind": self.kind,
                "arguments": self.arguments,
                "metrics": result.metrics,
                "seconds": result.seconds,
                "resumed_from_step": result.resumed_from_step,
            },
        )
        return result

    @staticmethod
    def _read_json(path: Path) -> dict[str, Any]:
        try:
            return json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise CheckpointError(f"'{path}' is unreadable or not JSON ({exc}); delete it or use --overwrite") from exc


def latest_checkpoint(checkpoints: Path) -> Path | None:
    """The ``checkpoint-<step>`` directory with the highest step, validated; None when there is none."""
    if not checkpoints.is_dir():
        return None
    found = [(int(m.group(1)), p) for p in checkpoints.iterdir() if (m := CHECKPOINT_PATTERN.match(p.name))]
    if not found:
        return None
    _, path = max(found)
    validate_checkpoint(path)
    return path


def validate_checkpoint(path: Path) -> int:
    """Check that a resumable checkpoint is complete and readable; returns its step. Raises CheckpointError."""
    path = Path(path)
    hint = f"delete '{path}' to resume from an earlier checkpoint, or rerun with --overwrite"
    if not path.is_dir():
        raise CheckpointError(f"checkpoint '{path}' does not exist")
    state_file = path / "trainer_state.json"
    try:
        state = json.loads(state_file.read_text())
        step = int(state["global_step"])
    except FileNotFoundError as exc:
        raise CheckpointError(f"checkpoint '{path}' is missing trainer_state.json; {hint}") from exc
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"checkpoint file '{state_file}' is corrupt ({exc}); {hint}") from exc
    _validate_weights(path, hint)
    for name in ("optimizer.pt",):
        if not (path / name).is_file() or (path / name).stat().st_size == 0:
            raise CheckpointError(f"checkpoint '{path}' is missing {name}; {hint}")
    return step


def validate_model_dir(path: Path) -> None:
    """Check that a saved model directory has a config and readable weights. Raises CheckpointError."""
    path = Path(path)
    if not (path / "config.json").is_file():
        raise CheckpointError(f"model directory '{path}' is missing config.json (incomplete or deleted stage)")
    _validate_weights(path, "rerun the stage with --overwrite")


def _validate_weights(path: Path, hint: str) -> None:
    from safetensors import safe_open

    files = [path / name for name in WEIGHT_FILES if (path / name).is_file()]
    if not files:
        raise CheckpointError(f"'{path}' holds no weights ({' or '.join(WEIGHT_FILES[:2])}); {hint}")
    for weights in files:
        if weights.suffix == ".json":
            continue
        try:
            with safe_open(str(weights), framework="pt") as handle:
                names = list(handle.keys())
                if names:
                    handle.get_slice(names[-1])  # the header names the data of the last tensor too
        except Exception as exc:  # safetensors raises its own SafetensorError and OSError
            raise CheckpointError(f"weights file '{weights}' is corrupt ({exc}); {hint}") from exc
        expected_end = _safetensors_data_end(weights)
        if expected_end is not None and weights.stat().st_size < expected_end:
            raise CheckpointError(f"weights file '{weights}' is truncated; {hint}")


def _safetensors_data_end(path: Path) -> int | None:
    """Byte size a complete safetensors file must have, read from its header."""
    try:
        with open(path, "rb") as handle:
            header_size = int.from_bytes(handle.read(8), "little")
            header = json.loads(handle.read(header_size))
    except (OSError, ValueError):
        return None
    ends = [entry["data_offsets"][1] for key, entry in header.items() if key != "__metadata__"]
    return 8 + header_size + max(ends, default=0)
