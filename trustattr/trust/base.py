"""What every trust benchmark shares: prompts, protocol settings, subsampling and the registry.

A benchmark is a small subclass of :class:`TrustBenchmark` that says

* which *pools* of source items it has (toxic / non-toxic prompts, wrong / not-wrong actions, ...);
* how one item becomes one or more :class:`TrustPrompt` (one per system-prompt *variant*);
* how a generation is parsed or scored (:meth:`TrustBenchmark.annotate`) and how parsed outputs become
  metrics (:meth:`TrustBenchmark.metrics`);
* its (trustworthy, untrustworthy) answer per prompt (:meth:`TrustBenchmark.target_pairs`).

Generation, resuming, files and tables are the runner's job (:mod:`trustattr.trust.evaluate`).
Subclasses register themselves by name: ``class Toxicity(TrustBenchmark, name="toxicity")``.
"""

from __future__ import annotations

import dataclasses
import random
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from trustattr.errors import TrustAttrError

__all__ = [
    "BENCHMARKS",
    "Protocol",
    "TrustBenchmark",
    "TrustPrompt",
    "benchmark_class",
    "get_benchmark",
    "hh_prompt",
    "subsample",
]

BENCHMARKS = ("toxicity", "stereotype", "ethics", "truthfulness", "privacy")
PROTOCOLS = ("fast", "paper")
_REGISTRY: dict[str, type[TrustBenchmark]] = {}


@dataclass(frozen=True)
class TrustPrompt:
    """One model input of a benchmark, before it is rendered as chat or plain text.

    Chat rendering: ``[system?, user]`` through the tokenizer's chat template (with the generation prompt),
    then ``answer_prefix`` (stripped of leading space) as the start of the assistant turn.
    Plain rendering: ``system + plain_joiner + user + answer_prefix`` (``user + answer_prefix`` without system).
    """

    id: str  # stable across runs and limits: "<item id>|<variant>"
    user: str
    system: str | None = None
    answer_prefix: str = ""
    plain_joiner: str = "\n"
    pool: str = ""
    variant: str = ""
    fields: Mapping[str, Any] = field(default_factory=dict, hash=False, compare=False)  # saved with each output

    def question_text(self) -> str:
        """The plain text without the answer prefix: what preference pairs use as their prompt."""
        return self.user if self.system is None else self.system + self.plain_joiner + self.user

    def plain_text(self) -> str:
        return self.question_text() + self.answer_prefix


def hh_prompt(text: str) -> str:
    """A benchmark prompt in the HH-RLHF form the preference pairs use: ``"Human: ...\\n\\nAssistant:"``."""
    return f"Human: {text.strip()}\n\nAssistant:"


def subsample(items: Sequence[Any], limit: int | None, seed: int, pool: str) -> list[Any]:
    """The first ``limit`` items of a permutation seeded by (seed, pool), returned in their original order.

    A smaller limit picks a subset of a larger one; ``None`` (or a limit >= len) keeps everything.
    """
    if limit is None or limit >= len(items):
        return list(items)
    if limit < 1:
        raise ValueError(f"limit must be a positive integer or None, got {limit}")
    order = list(range(len(items)))
    random.Random(f"{seed}:{pool}").shuffle(order)
    return [items[i] for i in sorted(order[:limit])]


@dataclass(frozen=True)
class Protocol:
    """Generation settings every benchmark has; subclasses add their own fields (validated the same way)."""

    num_samples: int = field(default=1, metadata={"help": "generations per prompt"})
    max_new_tokens: int = field(default=32, metadata={"help": "new tokens per generation (stops at EOS)"})
    temperature: float = field(default=0.0, metadata={"help": "sampling temperature; 0 = greedy decoding"})
    top_k: int = field(default=50, metadata={"help": "top-k filter when sampling (50: transformers' default, "
                                                     "which the paper's code inherited); 0 = off"})
    top_p: float = field(default=1.0, metadata={"help": "nucleus filter when sampling; 1 = off"})

    def __post_init__(self) -> None:
        if self.num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {self.num_samples}")
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0 (0 = greedy), got {self.temperature}")
        if self.top_k < 0:
            raise ValueError(f"top_k must be >= 0 (0 = off), got {self.top_k}")
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.temperature == 0 and self.num_samples > 1:
            raise ValueError(f"num_samples={self.num_samples} needs temperature > 0: greedy generations are identical")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0

    def to_dict(self) -> dict[str, Any]:
        return {f.name: _jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)}


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


class TrustBenchmark(ABC):
    """Base of the five trust benchmarks. Construct with ``get_benchmark(name, protocol=..., **overrides)``."""

    name: ClassVar[str]
    higher_is_better: ClassVar[bool]  # of the headline metric
    headline: ClassVar[str]  # the metric the tables and bar charts show
    protocol_class: ClassVar[type[Protocol]]
    presets: ClassVar[Mapping[str, Mapping[str, Any]]]  # "fast" / "paper" -> field values
    extra_name: ClassVar[str | None] = None  # file stem of extra (non-generation) records, if any

    def __init_subclass__(cls, name: str | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if name is not None:
            cls.name = name
            _REGISTRY[name] = cls

    def __init__(self, protocol: str = "fast", source: str | None = None, **overrides: Any) -> None:
        if protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")
        known = {f.name for f in dataclasses.fields(self.protocol_class)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ValueError(
                f"unknown {self.name} protocol setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        self.protocol_name = protocol
        overrides = {key: tuple(value) if isinstance(value, list) else value for key, value in overrides.items()}
        self.protocol = self.protocol_class(**{**self.presets[protocol], **overrides})
        self.source = source
        self._pools: dict[str, list[dict[str, Any]]] | None = None

    # -- items and prompts ----------------------------------------------------------------------------------
    @abstractmethod
    def load_pools(self) -> dict[str, list[dict[str, Any]]]:
        """Source items per pool, in a stable order; every item has a unique, stable ``"id"``."""
        raise NotImplementedError(f"{type(self).__name__}.load_pools")

    @abstractmethod
    def expand(self, pool: str, item: dict[str, Any]) -> list[TrustPrompt]:
        """The prompts (one per variant) of one source item."""
        raise NotImplementedError(f"{type(self).__name__}.expand")

    def headline_metric(self) -> str:
        """Name of the metric shown in tables and bar charts (may depend on the protocol or source)."""
        return self.headline

    def key_metrics(self) -> list[str]:
        """The few metrics the stage-comparison table shows (the headline first)."""
        return [self.headline_metric()]

    def pools(self) -> dict[str, list[dict[str, Any]]]:
        if self._pools is None:
            self._pools = self.load_pools()
        return self._pools

    def items(self, limit: int | None = None, seed: int = 0) -> list[tuple[str, dict[str, Any]]]:
        """(pool, item) for at most ``limit`` items of every pool (deterministic, see :func:`subsample`)."""
        return [(pool, item) for pool, items in self.pools().items() for item in subsample(items, limit, seed, pool)]

    def prompts(self, limit: int | None = None, seed: int = 0) -> list[TrustPrompt]:
        """Every prompt of at most ``limit`` items per pool; ids are unique and stable across limits."""
        return [prompt for pool, item in self.items(limit, seed) for prompt in self.expand(pool, item)]

    # -- outputs -> metrics -----------------------------------------------------------------------------------
    def annotate(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Add parsed / scored fields to generation records (in place); the default adds nothing."""
        return records

    @abstractmethod
    def metrics(self, records: list[dict[str, Any]], extra: list[dict[str, Any]]) -> dict[str, float]:
        """Flat metric dict from annotated generation records (and extra records, e.g. log-likelihoods)."""
        raise NotImplementedError(f"{type(self).__name__}.metrics")

    def measure_extra(self, model: Any, tokenizer: Any, prompts: list[TrustPrompt], *, batch_size: int,
                      use_chat_template: bool) -> list[dict[str, Any]]:
        """Non-generation measurements (e.g. TruthfulQA log-likelihoods); the default has none."""
        return []

    def breakdown(self, records: list[dict[str, Any]]) -> dict[str, Any] | None:
        """Optional nested results (e.g. agreeability per group and topic) saved beside the metrics."""
        return None

    def plots(self, breakdown: dict[str, Any], out_dir: Any) -> list[Any]:
        """Optional benchmark-specific plots from :meth:`breakdown`; returns the written paths."""
        return []

    @abstractmethod
    def target_pairs(self, limit: int | None = None, seed: int = 0) -> list[Any]:
        """(trustworthy answer = chosen, untrustworthy answer = rejected) per prompt, as PreferencePair."""
        raise NotImplementedError(f"{type(self).__name__}.target_pairs")

    def settings(self) -> dict[str, Any]:
        """Everything that determines the outputs, for resuming and for the results file."""
        return {"protocol": self.protocol_name, **self.protocol.to_dict(), "source": self.source}


def benchmark_class(name: str) -> type[TrustBenchmark]:
    _import_all()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise TrustAttrError(f"unknown trust benchmark {name!r}; known: {', '.join(BENCHMARKS)}") from None


def get_benchmark(name: str, protocol: str = "fast", source: str | None = None, **overrides: Any) -> TrustBenchmark:
    """The registered benchmark ``name`` with the ``protocol`` preset ("fast" or "paper") and overrides."""
    return benchmark_class(name)(protocol=protocol, source=source, **overrides)


def _import_all() -> None:
    from trustattr.trust import ethics, privacy, stereotype, toxicity, truthfulness  # noqa: F401  (registration)
