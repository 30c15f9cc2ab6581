"""``EvalArguments``: everything ``trustattr eval`` needs, validated; the help texts are the CLI's help."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trustattr.trust.base import BENCHMARKS, PROTOCOLS, benchmark_class

__all__ = ["EvalArguments", "help_for", "parse_models", "parse_settings"]

DTYPES = ("float32", "bfloat16", "float16")


@dataclass(frozen=True)
class EvalArguments:
    # what to evaluate
    models: tuple[tuple[str, str], ...] = field(metadata={
        "help": "model(s): tiny, smol, a checkpoint folder or a hub name; repeat the option or separate by commas; "
                "label stages as LABEL=MODEL (base=smol,sft=RUN/stages/sft/model)"})
    out_dir: Path = field(default=Path("trust-eval"), metadata={
        "help": "output folder; with several models one sub-folder per label plus stages.md / stages.png"})
    benchmarks: tuple[str, ...] = field(default=BENCHMARKS, metadata={
        "help": f"comma-separated subset of {', '.join(BENCHMARKS)}"})
    # how much and how
    limit: int | None = field(default=100, metadata={
        "help": "at most N source items per prompt pool (seeded, deterministic subsample); 0 = all"})
    protocol: str = field(default="fast", metadata={
        "help": "fast: short generations, few samples (CPU-sized); paper: the paper's sample counts and lengths"})
    seed: int = field(default=0, metadata={"help": "seed of the subsample and of sampling"})
    batch_size: int = field(default=16, metadata={"help": "prompts per generation batch"})
    use_chat_template: bool | None = field(default=None, metadata={
        "help": "render prompts with the tokenizer's chat template (default: when it has one)"})
    dtype: str = field(default="float32", metadata={"help": f"model dtype: {', '.join(DTYPES)}"})
    device: str = field(default="auto", metadata={"help": "cpu, cuda, cuda:N or auto (cuda when available)"})
    threads: int | None = field(default=None, metadata={
        "help": "CPU threads for torch (default: torch's choice; 1 is often faster on a busy machine)"})
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict, metadata={
        "help": "protocol settings BENCHMARK.FIELD=VALUE, e.g. toxicity.num_samples=5 (repeatable)"})
    overwrite: bool = field(default=False, metadata={"help": "recompute benchmarks that are already done"})

    def __post_init__(self) -> None:
        if not self.models:
            raise ValueError("models: give at least one model (tiny, smol, a checkpoint folder or a hub name)")
        labels = [label for label, _ in self.models]
        if len(set(labels)) != len(labels):
            raise ValueError(f"models: stage labels must be unique, got {', '.join(labels)}")
        unknown = [b for b in self.benchmarks if b not in BENCHMARKS]
        if unknown or not self.benchmarks:
            raise ValueError(f"benchmarks must be names from {', '.join(BENCHMARKS)}, got {', '.join(self.benchmarks)}")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"limit must be >= 1 or None (all), got {self.limit}")
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {', '.join(PROTOCOLS)}, got {self.protocol!r}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads must be >= 1, got {self.threads}")
        if not (self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:")):
            raise ValueError(f"device must be cpu, cuda, cuda:N or auto, got {self.device!r}")


def help_for(name: str) -> str:
    return next(f.metadata["help"] for f in dataclasses.fields(EvalArguments) if f.name == name)


def parse_models(values: list[str]) -> tuple[tuple[str, str], ...]:
    """['base=smol,sft=RUN/stages/sft/model'] -> (('base', 'smol'), ('sft', 'RUN/stages/sft/model')).

    Without a label: the preset name, or the folder name (its parent's for a folder called "model").
    """
    models = []
    for value in values:
        for entry in (part.strip() for part in value.split(",")):
            if not entry:
                continue
            label, sep, spec = entry.partition("=")
            if not sep:
                label, spec = _default_label(entry), entry
            if not label.strip() or not spec.strip():
                raise ValueError(f"--model: expected MODEL or LABEL=MODEL, got {entry!r}")
            models.append((label.strip(), spec.strip()))
    return tuple(models)


def _default_label(spec: str) -> str:
    path = Path(spec.rstrip("/"))
    if path.name == "model" and path.parent.name:
        return path.parent.name
    return path.name or spec


def parse_settings(values: list[str]) -> dict[str, dict[str, Any]]:
    """['toxicity.num_samples=5', 'privacy.email_shots=one_shot'] -> {'toxicity': {'num_samples': 5}, ...}.

    Values are converted to the field's type; tuples are comma-separated (an empty value is an empty tuple).
    The key ``source`` (a local file or datasets name replacing the shipped data) is accepted for every benchmark.
    """
    result: dict[str, dict[str, Any]] = {}
    for value in values:
        key, sep, text = value.partition("=")
        bench, dot, name = key.strip().partition(".")
        if not sep or not dot:
            raise ValueError(f"--set: expected BENCHMARK.FIELD=VALUE, got {value!r}")
        if bench not in BENCHMARKS:
            raise ValueError(f"--set {value!r}: unknown benchmark {bench!r}; known: {', '.join(BENCHMARKS)}")
        result.setdefault(bench, {})[name] = _convert(bench, name, text.strip())
    return result


def _convert(bench: str, name: str, text: str) -> Any:
    if name == "source":
        return text
    fields = {f.name: f for f in dataclasses.fields(benchmark_class(bench).protocol_class)}
    if name not in fields:
        raise ValueError(f"--set {bench}.{name}: unknown setting; known: {', '.join(sorted(fields))}, source")
    kind = str(fields[name].type)
    try:
        if kind == "int":
            return int(text)
        if kind == "float":
            return float(text)
        if kind == "bool":
            if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(text)
            return text.lower() in ("true", "1", "yes")
        if kind.startswith("tuple"):
            return tuple(part.strip() for part in text.split(",") if part.strip())
    except ValueError:
        raise ValueError(f"--set {bench}.{name}: expected a value of type {kind}, got {text!r}") from None
    return text
