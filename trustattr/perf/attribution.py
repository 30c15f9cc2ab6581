"""Attribution throughput: forward + backward + capture + projection vs a plain forward + backward.

Same process, same model, same pairs, same batches, same loss (DPO with precomputed reference log-probs);
each pass is repeated alternately and the median is reported in pairs/s. Baselines:

    fwd+bwd (tracked)   loss.sum().backward() with only the tracked weights requiring grad: a plain gradient
                        of exactly the parameters being attributed (backward stops at the first tracked block)
    fwd+bwd (all)       loss.sum().backward() with every parameter requiring grad (a training step's cost)
    attribution         Attributor.batch_features: the same forward, backward to the tracked outputs only,
                        hooks, and the compiled project_factored per module

The target of issue 6 is attribution / fwd+bwd (tracked) <= 1.3.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from trustattr.attribution.attributor import Attributor, reference_logprobs
from trustattr.attribution.losses import make_loss
from trustattr.attribution.modules import select_modules
from trustattr.attribution.projector import Projector
from trustattr.perf.timing import machine_info

__all__ = ["AttributionBenchArguments", "markdown", "run"]


@dataclass(frozen=True)
class AttributionBenchArguments:
    models: list[str] = field(default_factory=lambda: ["tiny", "smol"], metadata={"help": "models: tiny, smol, paths"})
    pairs: int = field(default=32, metadata={"help": "HH training pairs per pass"})
    batch_size: int = field(default=8, metadata={"help": "pairs per batch"})
    max_length: int = field(default=192, metadata={"help": "max tokens of prompt + response"})
    max_prompt_length: int = field(default=128, metadata={"help": "max prompt tokens"})
    last_k_blocks: int = field(default=4, metadata={"help": "tracked blocks"})
    k: int = field(default=16, metadata={"help": "factored projection size per side"})
    reps: int = field(default=3, metadata={"help": "alternating repetitions of each pass"})

    def __post_init__(self) -> None:
        for name in ("pairs", "batch_size", "max_length", "max_prompt_length", "k", "reps"):
            if getattr(self, name) < 1:
                raise ValueError(f"`{name}` must be >= 1, got {getattr(self, name)}")
        if not self.models:
            raise ValueError("`models` must name at least one model")


def _set_trainable(model: torch.nn.Module, params: set[int] | None) -> None:
    for p in model.parameters():
        p.requires_grad_(params is None or id(p) in params)


def _bench_model(name: str, args: AttributionBenchArguments, log: Callable[[str], None]) -> dict:
    from trustattr.attribution.loading import load_causal_lm, load_tokenizer
    from trustattr.preference_data import load_preference_pairs

    model, tokenizer = load_causal_lm(name), load_tokenizer(name)
    pairs = load_preference_pairs("hh", limit=args.pairs, seed=0)
    loss = make_loss("dpo", args.max_length, args.max_prompt_length)
    ref = reference_logprobs(model, tokenizer, loss, pairs, args.batch_size)
    batches = [loss.encode(tokenizer, pairs[i : i + args.batch_size], ref[i : i + args.batch_size])
               for i in range(0, len(pairs), args.batch_size)]
    modules = select_modules(model, None, args.last_k_blocks)
    tracked = {id(m.weight) for m in modules.values()}
    attributor = Attributor(model, tokenizer, loss, modules, Projector(modules, "factored", args.k, 0))

    def plain(params: set[int] | None) -> Callable[[], None]:
        def run() -> None:
            _set_trainable(model, params)
            for batch in batches:
                loss.losses(model, batch).sum().backward()
            model.zero_grad(set_to_none=True)
        return run

    def attribute() -> None:
        _set_trainable(model, set())  # a frozen model: capture needs no parameter gradients at all
        for batch in batches:
            attributor.batch_features(batch)

    passes = {"fwd+bwd (tracked)": plain(tracked), "fwd+bwd (all)": plain(None), "attribution": attribute}
    samples: dict[str, list[float]] = {key: [] for key in passes}
    attribute()  # warm-up
    for _ in range(args.reps):
        for key, fn in passes.items():
            start = time.perf_counter()
            fn()
            samples[key].append(time.perf_counter() - start)
    tokens = sum(int(b.rows.attention_mask.sum()) for b in batches)
    result = {"model": name, "pairs": len(pairs), "tokens": tokens, "modules": len(modules),
              "feature_dim": attributor.projector.dim,
              "pairs_per_s": {key: len(pairs) / statistics.median(v) for key, v in samples.items()},
              "seconds": {key: [round(s, 3) for s in v] for key, v in samples.items()}}
    result["ratio_vs_tracked"] = result["pairs_per_s"]["fwd+bwd (tracked)"] / result["pairs_per_s"]["attribution"]
    result["ratio_vs_all"] = result["pairs_per_s"]["fwd+bwd (all)"] / result["pairs_per_s"]["attribution"]
    log(f"{name}: attribution {result['pairs_per_s']['attribution']:.2f} pairs/s, "
        f"time ratio vs fwd+bwd (tracked) {result['ratio_vs_tracked']:.2f}")
    _set_trainable(model, None)
    return result


def run(args: AttributionBenchArguments, log: Callable[[str], None] = print) -> dict:
    return {"machine": machine_info(), "arguments": args.__dict__, "results": [_bench_model(m, args, log)
                                                                               for m in args.models]}


def markdown(result: dict) -> str:
    lines = ["| model | pairs | tokens | tracked modules | fwd+bwd (tracked) pairs/s | fwd+bwd (all) pairs/s | "
             "attribution pairs/s | time ratio attribution / fwd+bwd (tracked) | vs fwd+bwd (all) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in result["results"]:
        p = r["pairs_per_s"]
        lines.append(f"| {r['model']} | {r['pairs']} | {r['tokens']} | {r['modules']} | "
                     f"{p['fwd+bwd (tracked)']:.2f} | {p['fwd+bwd (all)']:.2f} | {p['attribution']:.2f} | "
                     f"{r['ratio_vs_tracked']:.2f} | {r['ratio_vs_all']:.2f} |")
    return "\n".join(lines)
