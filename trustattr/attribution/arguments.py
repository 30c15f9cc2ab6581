"""ScoreArguments: every setting of an attribution run, validated, with the help text the CLI shows.

The ``help`` metadata of each field is the single source of ``trustattr score --help``. Presets are applied
with :meth:`ScoreArguments.from_preset`, which goes through ``__post_init__`` like any other construction.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from trustattr.attribution.trust_side import BENCHMARK_NAMES

__all__ = ["CHECKPOINT_METHODS", "DTYPES", "LOSSES", "METHODS", "PRESETS", "PROJECTIONS", "TEST_SIDES", "ScoreArguments"]

LOSSES = ("dpo", "sft", "reward")
METHODS = ("datainf", "datainf_exact", "whitened_cosine", "gradient_dot", "gradient_cosine", "tracin", "trak", "less",
           "ekfac")
CHECKPOINT_METHODS = ("tracin", "less")
PROJECTIONS = ("factored", "outer", "exact")
TEST_SIDES = ("target", "paper")
DTYPES = ("float32", "bfloat16", "float64")

# Settings each preset changes; everything else keeps the field default.
PRESETS: dict[str, dict[str, Any]] = {
    "smol": {},
    "tiny": {
        "reference": "tiny",
        "policy": "tiny",
        "limit": 24,
        "test_limit": 6,
        "max_length": 64,
        "max_prompt_length": 40,
        "last_k_blocks": 2,
        "k": 8,
        "batch_size": 4,
        "shard_size": 8,
        "max_new_tokens": 8,
    },
}


def _help(text: str, **extra: Any) -> dict[str, Any]:
    return {"help": text, **extra}


@dataclass(frozen=True)
class ScoreArguments:
    """What to attribute, with which loss, projection and method, and where to write the results."""

    # ------------------------------------------------------------------ models
    reference: str = field(
        default="smol",
        metadata=_help(
            "Reference model (the model before the RLHF stage): 'smol', 'tiny', a local checkpoint or a hub name."
        ),
    )
    policy: str = field(
        default="auto",
        metadata=_help(
            "Policy model (after the stage): a local checkpoint (plain or a PEFT LoRA adapter), 'tiny', a hub name, or "
            "'auto' = the reference plus a small LoRA-DPO run on the training pairs (trained once, cached)."
        ),
    )
    dtype: str = field(default="float32", metadata=_help(f"Model dtype for capture: one of {', '.join(DTYPES)}."))
    # ----------------------------------------------------------- training data
    train_data: str = field(
        default="hh",
        metadata=_help(
            "Training preference pairs: 'hh' (shipped HH-RLHF), 'hh-helpful', 'hh-harmless', a local "
            ".jsonl/.json(.gz)/.parquet/.csv/.arrow file, a datasets save_to_disk folder, or a hub dataset "
            "name[:config]:split. Rows in any trl preference format: prompt/chosen/rejected text, chosen/rejected with "
            "an implicit shared prompt, {role, content} message lists (chat template applied), HH transcripts."
        ),
    )
    split: str | None = field(
        default=None,
        metadata=_help(
            "Hash split of the training data: train, eval or all. Default: train (90%) for the shipped hh data, all "
            "for your own file or dataset (no rows held out)."
        ),
    )
    limit: int | None = field(default=256, metadata=_help("Number of training pairs (seeded subsample); 0 = all."))
    # ------------------------------------------------------- test side (trust)
    benchmarks: tuple[str, ...] = field(
        default=BENCHMARK_NAMES,
        metadata=_help(f"Trust benchmarks, comma-separated (default all: {', '.join(BENCHMARK_NAMES)})."),
    )
    test_side: str = field(
        default="target",
        metadata=_help(
            "Test-side pairs per benchmark: 'target' (the benchmark's trustworthy vs untrustworthy answer) or 'paper' "
            "(the policy's generation vs the reference's generation, as in the paper; needs generation)."
        ),
    )
    test_limit: int = field(default=50, metadata=_help("Prompts (test pairs) per benchmark."))
    max_new_tokens: int = field(default=32, metadata=_help("Generation length for --test-side paper."))
    # -------------------------------------------------------------------- loss
    loss: str = field(
        default="dpo",
        metadata=_help(
            "Loss whose per-pair gradients are attributed: 'dpo' (policy vs reference), 'sft' (cross-entropy on the "
            "chosen response) or 'reward' (Bradley-Terry on a reward model given as --policy; the PPO stage)."
        ),
    )
    beta: float = field(default=0.1, metadata=_help("DPO beta of the training run."))
    max_length: int = field(default=192, metadata=_help("Maximum tokens of prompt + response."))
    max_prompt_length: int = field(default=128, metadata=_help("Maximum prompt tokens (prompts are cut on the left)."))
    # -------------------------------------------------- capture and projection
    modules: str | None = field(
        default=None,
        metadata=_help(
            "Regular expression over module names selecting the tracked nn.Linear modules (LoRA A/B for PEFT "
            "models); default: every Linear of the last --last-k-blocks blocks, lm_head excluded."
        ),
    )
    last_k_blocks: int = field(default=4, metadata=_help("Track the last K transformer blocks; 0 = all blocks."))
    projection: str = field(
        default="factored",
        metadata=_help(
            "'factored': each module's gradient sketched to k x k features (LoGra style, per-layer blocks); "
            "'outer': the whole gradient sketched to k features by one global projection (one block: "
            "datainf, datainf_exact and whitened_cosine then fit one curvature over all modules, with a warning); "
            "'exact': no projection, the full per-pair gradients (sum of d_out x d_in per module; for LoRA factors or "
            "small models: on the LDS benchmark ekfac on exact gradients ranked best by far)."
        ),
    )
    k: int = field(default=16, metadata=_help(
        "Projection size (per side for factored, total for outer). A factored side is capped at the module's own "
        "size (min(k, d); a LoRA factor's rank side at r) and kept exact there."))
    seed: int = field(default=0, metadata=_help("Seed of the random projections and of the data subsamples."))
    # ------------------------------------------------------------------ method
    method: str = field(default="datainf", metadata=_help(
        f"Attribution method: {', '.join(METHODS)} (default: the best on the LDS benchmark, `trustattr lds`)."))
    damping: float | None = field(
        default=None,
        metadata=_help(
            "Relative damping: datainf lambda_l = damping x the block's mean squared gradient entry (default 0.1, the "
            "paper's); datainf_exact/whitened_cosine per block and trak globally lambda = damping x the mean non-zero "
            "eigenvalue of the curvature (default 1.0, the best of a sweep on the LDS benchmark); ekfac per module "
            "lambda = damping x the mean of its eigenvalue correction (default 0.1)."
        ),
    )
    normalize: bool = field(
        default=False,
        metadata=_help("Cosine scores in the method's metric (train and test gradient norms divided out)."),
    )
    checkpoints: str | None = field(
        default=None,
        metadata=_help(
            "tracin/less: directory of checkpoints saved by AttributionCallback (each with its learning rate; less "
            "also needs their Adam moments). less uses one global projection with as many features as factored gives."
        ),
    )
    # --------------------------------------------------------------- execution
    out: str = field(default="trustattr-score", metadata=_help("Output directory (reused to resume)."))
    batch_size: int = field(default=8, metadata=_help("Pairs per forward/backward batch (scores do not depend on it)."))
    shard_size: int = field(default=256, metadata=_help("Pairs per feature-store shard (the unit of resume)."))
    top: int = field(default=10, metadata=_help("Pairs listed per benchmark and direction in report.md."))

    def __post_init__(self) -> None:
        _choice("dtype", self.dtype, DTYPES)
        if self.split is not None:
            _choice("split", self.split, ("train", "eval", "all"))
        _choice("test_side", self.test_side, TEST_SIDES)
        _choice("loss", self.loss, LOSSES)
        _choice("projection", self.projection, PROJECTIONS)
        if self.projection == "exact" and self.method == "less":
            raise ValueError("`projection` exact is not supported by `method` less (its Adam features are projected)")
        _choice("method", self.method, METHODS)
        if isinstance(self.benchmarks, str):
            object.__setattr__(self, "benchmarks", tuple(b.strip() for b in self.benchmarks.split(",") if b.strip()))
        if not self.benchmarks:
            raise ValueError("`benchmarks` must name at least one benchmark")
        for name in self.benchmarks:
            _choice("benchmarks", name, BENCHMARK_NAMES)
        if len(set(self.benchmarks)) != len(self.benchmarks):
            raise ValueError(f"`benchmarks` names a benchmark twice: {','.join(self.benchmarks)}")
        if self.limit is not None and self.limit < 0:
            raise ValueError(f"`limit` must be >= 0 (0 = all pairs), got {self.limit}")
        for name in ("test_limit", "max_new_tokens", "max_length", "max_prompt_length", "k", "batch_size",
                     "shard_size", "top"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` must be a positive integer, got {value!r}")
        if self.max_prompt_length >= self.max_length:
            raise ValueError(
                f"`max_prompt_length` ({self.max_prompt_length}) must be smaller than `max_length` ({self.max_length})"
            )
        if self.last_k_blocks < 0:
            raise ValueError(f"`last_k_blocks` must be >= 0 (0 = all blocks), got {self.last_k_blocks}")
        if not self.beta > 0:
            raise ValueError(f"`beta` must be > 0, got {self.beta}")
        if self.damping is not None and not self.damping > 0:
            raise ValueError(f"`damping` must be > 0 or unset, got {self.damping}")
        if self.method in CHECKPOINT_METHODS and self.checkpoints is None:
            raise ValueError(f"`method` {self.method} needs `checkpoints` (a directory written by AttributionCallback)")
        if self.checkpoints is not None and self.policy != "auto":
            raise ValueError(
                f"`checkpoints` and `policy` both name the models to score: `policy` {self.policy!r} would be ignored "
                "for the checkpoints; give one of them"
            )
        if self.loss == "reward" and self.policy == "auto":
            raise ValueError(
                "`loss` reward needs `policy`: the reward model to attribute (e.g. a trustattr train rm model)"
            )
        if self.loss == "reward" and self.test_side == "paper":
            raise ValueError("`test_side` paper with `loss` reward is not supported: use target")

    @classmethod
    def from_preset(cls, preset: str | None = None, **overrides: Any) -> ScoreArguments:
        """The preset's settings (``tiny`` or ``smol``), then ``overrides`` (entries that are None are ignored)."""
        if preset is not None:
            _choice("preset", preset, tuple(PRESETS))
        values = dict(PRESETS.get(preset or "smol", {}))
        values.update({key: value for key, value in overrides.items() if value is not None})
        return cls(**values)

    def replace(self, **changes: Any) -> ScoreArguments:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        values = dataclasses.asdict(self)
        values["benchmarks"] = list(self.benchmarks)
        return values


def _choice(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"`{name}` must be one of {', '.join(allowed)}; got {value!r}")
