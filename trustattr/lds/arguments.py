"""LDSArguments: every setting of ``trustattr lds``, validated, with the help text the CLI shows."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from trustattr.attribution.methods import METHOD_REGISTRY

__all__ = ["LDS_METHODS", "LDSArguments"]

# Methods the LDS runs by default: every single-model method, tracin over the full run's epoch checkpoints.
LDS_METHODS = ("gradient_dot", "gradient_cosine", "datainf", "datainf_exact", "whitened_cosine", "trak", "tracin",
               "ekfac")

PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {},
    "smol": {"model": "smol", "train_data": "hh", "queries": "trust", "num_train": 128, "num_queries": 40,
             "num_subsets": 32, "epochs": 1, "learning_rate": 5e-4, "batch_size": 8, "beta": 0.1, "k": 8,
             "ensemble": 1, "exact": False, "last_k_blocks": 2, "max_length": 128, "max_prompt_length": 96},
}


def _help(text: str) -> dict[str, Any]:
    return {"help": text}


@dataclass(frozen=True)
class LDSArguments:
    """A linear-datamodeling benchmark: workload, retrains, methods, output."""

    preset: str = field(default="tiny", metadata=_help(
        "Workload: 'tiny' (synthetic topic preferences on a random-init 2-layer model, minutes), 'smol' "
        "(SmolLM2-135M LoRA-DPO on shipped HH pairs, queries = trust target pairs; long) or 'custom' "
        "(--model, --train-data, --queries)."))
    model: str = field(default="tiny", metadata=_help("custom/smol: the start model (also the DPO reference)."))
    train_data: str = field(default="hh", metadata=_help("custom/smol: training pairs (as trustattr score reads)."))
    queries: str = field(default="trust", metadata=_help(
        "custom/smol: query pairs whose margins are measured: a pairs file, or 'trust' = the trust benchmarks' "
        "target pairs."))
    num_train: int = field(default=96, metadata=_help("Training pairs."))
    num_queries: int = field(default=32, metadata=_help("Query pairs."))
    num_subsets: int = field(default=64, metadata=_help("Retrained subsets M."))
    fraction: float = field(default=0.5, metadata=_help("Share of the training pairs in each subset."))
    methods: tuple[str, ...] = field(default=LDS_METHODS, metadata=_help(
        f"Methods, comma-separated (any of {', '.join(METHOD_REGISTRY)}; less needs Adam checkpoints, not run)."))
    damping: tuple[float, ...] = field(default=(), metadata=_help(
        "Relative dampings to sweep, comma-separated (methods with a curvature: datainf, datainf_exact, "
        "whitened_cosine, trak, ekfac); empty = each method's default (0.1)."))
    k: int = field(default=16, metadata=_help("Factored projection size per side (features: k x k per module)."))
    ensemble: int = field(default=3, metadata=_help(
        "Independently seeded full-data runs; trak is also scored as their ensemble."))
    exact: bool = field(default=True, metadata=_help("Also score every method on exact (unprojected) gradients."))
    epochs: int = field(default=4, metadata=_help("Training epochs of every run."))
    learning_rate: float = field(default=2e-3, metadata=_help("AdamW learning rate of every run."))
    batch_size: int = field(default=8, metadata=_help("Pairs per optimizer step."))
    beta: float = field(default=0.5, metadata=_help("DPO beta."))
    last_k_blocks: int = field(default=0, metadata=_help("Tracked (and, custom/smol, LoRA-trained) last blocks; "
                                                          "0 = all."))
    max_length: int = field(default=32, metadata=_help("Maximum tokens of prompt + response."))
    max_prompt_length: int = field(default=16, metadata=_help("Maximum prompt tokens."))
    seed: int = field(default=0, metadata=_help("Seed of the data, start model, subsets and projections."))
    out: str = field(default="trustattr-lds", metadata=_help("Output directory (reused to resume the retrains)."))

    def __post_init__(self) -> None:
        if self.preset not in ("tiny", "smol", "custom"):
            raise ValueError(f"`preset` must be one of tiny, smol, custom; got {self.preset!r}")
        if isinstance(self.methods, str):
            object.__setattr__(self, "methods", tuple(m.strip() for m in self.methods.split(",") if m.strip()))
        if not self.methods:
            raise ValueError("`methods` must name at least one method")
        for name in self.methods:
            if name not in METHOD_REGISTRY or name == "less":
                allowed = ", ".join(m for m in METHOD_REGISTRY if m != "less")
                raise ValueError(f"`methods` must be among {allowed}; got {name!r}")
        if isinstance(self.damping, str):
            try:
                values = tuple(float(d) for d in self.damping.split(",") if d.strip())
            except ValueError:
                raise ValueError(f"`damping` must be comma-separated numbers, got {self.damping!r}") from None
            object.__setattr__(self, "damping", values)
        if any(not d > 0 for d in self.damping):
            raise ValueError(f"`damping` values must be > 0, got {list(self.damping)}")
        for name in ("num_train", "num_queries", "num_subsets", "k", "ensemble", "epochs", "batch_size",
                     "max_length", "max_prompt_length"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` must be a positive integer, got {value!r}")
        if self.num_subsets < 8:
            raise ValueError(f"`num_subsets` must be >= 8 for a rank correlation to mean anything, got "
                             f"{self.num_subsets}")
        if not 0 < self.fraction < 1:
            raise ValueError(f"`fraction` must be in (0, 1), got {self.fraction}")
        for name in ("learning_rate", "beta"):
            if not getattr(self, name) > 0:
                raise ValueError(f"`{name}` must be > 0, got {getattr(self, name)!r}")
        if self.last_k_blocks < 0:
            raise ValueError(f"`last_k_blocks` must be >= 0, got {self.last_k_blocks}")
        if self.max_prompt_length >= self.max_length:
            raise ValueError(f"`max_prompt_length` ({self.max_prompt_length}) must be smaller than `max_length` "
                             f"({self.max_length})")

    @classmethod
    def from_preset(cls, preset: str = "tiny", **overrides: Any) -> LDSArguments:
        if preset not in ("tiny", "smol", "custom"):
            raise ValueError(f"`preset` must be one of tiny, smol, custom; got {preset!r}")
        values = {**PRESETS.get(preset, {}), "preset": preset}
        values.update({key: value for key, value in overrides.items() if value is not None})
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        values = dataclasses.asdict(self)
        values["methods"] = list(self.methods)
        values["damping"] = list(self.damping)
        return values
