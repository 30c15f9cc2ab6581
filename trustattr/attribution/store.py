"""FeatureStore: projected features on disk in fixed-size shards, with the arguments that made them.

Layout of a store directory::

    store.json              {"arguments": {...}, "num_rows": N, "dim": k, "shard_size": S, "dtype": "float32"}
    shard-00000.npy         rows [0, S) as a float32 [S, k] array
    shard-00001.npy         rows [S, 2S) ...

Every file is written atomically, so a shard file exists only when it is complete: an interrupted run
resumes from the shards that exist. Opening a store with arguments other than the stored ones raises
:class:`~trustattr.errors.ArgumentsMismatchError` naming the keys that differ. Shards are read memory-mapped.
The shard grid is global (shard s always holds rows [sS, (s+1)S)), so a store is the same whatever number
of processes wrote it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from trustattr.errors import ArgumentsMismatchError, CheckpointError
from trustattr.paths import atomic_path

__all__ = ["FeatureStore", "diff_arguments"]

STORE_FILE = "store.json"


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            _flatten(f"{prefix}.{key}" if prefix else str(key), item, out)
    else:
        out[prefix] = value


def diff_arguments(stored: dict[str, Any], requested: dict[str, Any]) -> list[str]:
    """Dotted keys whose values differ between two (nested) argument dicts."""
    a: dict[str, Any] = {}
    b: dict[str, Any] = {}
    _flatten("", json.loads(json.dumps(stored)), a)
    _flatten("", json.loads(json.dumps(requested)), b)
    return sorted(key for key in a.keys() | b.keys() if a.get(key, "<absent>") != b.get(key, "<absent>"))


def write_json(path: Path, payload: dict[str, Any]) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")


def write_array(path: Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.save(handle, array)


class FeatureStore:
    """Shards of a [num_rows, dim] feature matrix; see the module docstring."""

    def __init__(self, root: str | Path, arguments: dict[str, Any], num_rows: int, dim: int, shard_size: int) -> None:
        if num_rows < 1 or dim < 1 or shard_size < 1:
            raise ValueError(f"FeatureStore needs num_rows, dim, shard_size >= 1; got {num_rows}, {dim}, {shard_size}")
        self.root = Path(root)
        self.num_rows, self.dim, self.shard_size = num_rows, dim, shard_size
        self.header = {"arguments": arguments, "num_rows": num_rows, "dim": dim, "shard_size": shard_size,
                       "dtype": "float32"}
        self._check_or_create()

    def _check_or_create(self) -> None:
        path = self.root / STORE_FILE
        if path.exists():
            try:
                stored = json.loads(path.read_text())
            except json.JSONDecodeError as exc:
                raise CheckpointError(f"feature store '{self.root}' has a corrupt {STORE_FILE}: {exc}") from exc
            differing = diff_arguments(stored, self.header)
            if differing:
                shown = ", ".join(differing[:6]) + (" ..." if len(differing) > 6 else "")
                raise ArgumentsMismatchError(
                    f"feature store '{self.root}' was made with other arguments (differing: {shown}); "
                    "use another output directory or delete it"
                )
        else:
            write_json(path, self.header)

    @property
    def num_shards(self) -> int:
        return -(-self.num_rows // self.shard_size)

    def shard_rows(self, shard: int) -> range:
        return range(shard * self.shard_size, min(self.num_rows, (shard + 1) * self.shard_size))

    def shard_path(self, shard: int) -> Path:
        return self.root / f"shard-{shard:05d}.npy"

    def shard_exists(self, shard: int) -> bool:
        return self.shard_path(shard).exists()

    def missing(self, shards: Iterable[int] | None = None) -> list[int]:
        """The shards (of ``shards``, default all) that are not yet written."""
        wanted = range(self.num_shards) if shards is None else shards
        return [s for s in wanted if not self.shard_exists(s)]

    def write_shard(self, shard: int, features: np.ndarray) -> None:
        expected = (len(self.shard_rows(shard)), self.dim)
        if tuple(features.shape) != expected:
            raise ValueError(f"shard {shard} must have shape {expected}, got {tuple(features.shape)}")
        write_array(self.shard_path(shard), np.ascontiguousarray(features, dtype=np.float32))

    def read_shard(self, shard: int) -> np.ndarray:
        """Shard ``shard`` memory-mapped, [rows, dim] float32."""
        path = self.shard_path(shard)
        if not path.exists():
            raise CheckpointError(f"feature store '{self.root}' lacks shard {shard} ({path.name})")
        array = np.load(path, mmap_mode="r")
        if array.shape != (len(self.shard_rows(shard)), self.dim):
            raise CheckpointError(f"feature store '{self.root}': shard {path.name} has shape {array.shape}")
        return array

    def read_all(self) -> np.ndarray:
        """All rows [num_rows, dim] float32 (raises if a shard is missing)."""
        return np.concatenate([self.read_shard(s) for s in range(self.num_shards)], axis=0)

    def complete(self) -> bool:
        return not self.missing()
