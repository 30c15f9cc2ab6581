"""Training checkpoints for tracin/less, as :class:`~trustattr.integrations.trl.AttributionCallback` writes them.

Layout of a checkpoint directory ``ROOT/checkpoint-<step>/``::

    attribution.json             {"step", "epoch", "learning_rate", "model_kind": "full"|"adapter",
                                  "optimizer_state": bool, "adam": {"betas": [b1, b2], "eps": e}, "features": {...}}
    model/                       save_pretrained() of the trainer's model (a PEFT adapter or a full model) and
                                 of its tokenizer
    optimizer_state.safetensors  optional: "<param name>.exp_avg" / ".exp_avg_sq" of the tracked weights
    features/<set>.npy, features/<set>.json   optional projected features (ids + projection arguments)

A checkpoint is written into a temporary directory and renamed, so it exists only when complete.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from trustattr.errors import CheckpointError

__all__ = ["CHECKPOINT_FILE", "CheckpointInfo", "list_checkpoints", "load_adam_state"]

CHECKPOINT_FILE = "attribution.json"
OPTIMIZER_FILE = "optimizer_state.safetensors"


@dataclass(frozen=True)
class CheckpointInfo:
    path: Path
    step: int
    learning_rate: float
    meta: dict[str, Any]

    @property
    def model_path(self) -> Path:
        return self.path / "model"

    @property
    def name(self) -> str:
        return self.path.name


def list_checkpoints(root: str | Path) -> list[CheckpointInfo]:
    """Every complete checkpoint under ``root`` (or ``root`` itself if it is one), by step."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise CheckpointError(f"checkpoint directory '{root}' does not exist")
    candidates = [root] if (root / CHECKPOINT_FILE).exists() else sorted(root.glob("checkpoint-*"))
    found = []
    for path in candidates:
        meta_path = path / CHECKPOINT_FILE
        if not meta_path.exists():
            continue
        try:
            meta = json.loads(meta_path.read_text())
        except json.JSONDecodeError as exc:
            raise CheckpointError(f"checkpoint '{path}' has a corrupt {CHECKPOINT_FILE}: {exc}") from exc
        found.append(CheckpointInfo(path, int(meta["step"]), float(meta["learning_rate"]), meta))
    if not found:
        raise CheckpointError(f"'{root}' holds no checkpoint written by AttributionCallback ({CHECKPOINT_FILE})")
    return sorted(found, key=lambda c: c.step)


def load_adam_state(checkpoint: CheckpointInfo) -> tuple[dict[str, tuple[torch.Tensor, torch.Tensor]], dict]:
    """({weight name: (exp_avg, exp_avg_sq)}, {"betas": ..., "eps": ...}) saved with ``checkpoint``."""
    from safetensors.torch import load_file

    path = checkpoint.path / OPTIMIZER_FILE
    if not path.exists():
        raise CheckpointError(
            f"checkpoint '{checkpoint.path}' has no optimizer state (the less method needs Adam moments: "
            "save them with AttributionCallback(save_optimizer_state=True))"
        )
    tensors = load_file(str(path))
    names = {key.rsplit(".", 1)[0] for key in tensors}
    state = {name: (tensors[f"{name}.exp_avg"], tensors[f"{name}.exp_avg_sq"]) for name in names}
    return state, checkpoint.meta.get("adam", {"betas": [0.9, 0.999], "eps": 1e-8})
