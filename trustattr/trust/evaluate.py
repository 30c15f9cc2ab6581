"""Running trust benchmarks on one model: prompts -> batched generation (resumable) -> parsing -> metrics -> files.

``evaluate`` writes, under ``out_dir``:
    results.json, results.md, results.png       all benchmarks of this model (merged with earlier runs there)
    <benchmark>/outputs.jsonl, metrics.json ...  per benchmark (see :mod:`trustattr.trust.store`)
A benchmark whose metrics.json holds the same settings is not generated again (its metrics are recomputed from
the saved outputs, so parser fixes apply); an interrupted one continues from its checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from trustattr.paths import atomic_path
from trustattr.trust.base import BENCHMARKS, TrustBenchmark, TrustPrompt, benchmark_class, get_benchmark
from trustattr.trust.generation import (
    batch_seed, encode, generate_batch, generation_config, plan_batches, render, resolve_chat_template,
)
from trustattr.trust.store import BatchCheckpoint, json_safe, read_json, read_jsonl_records, write_json, write_jsonl

__all__ = ["evaluate", "recompute_metrics", "run_benchmark"]

Log = Callable[[str], None]


def evaluate(
    model: Any,
    tokenizer: Any,
    *,
    out_dir: str | Path,
    benchmarks: Sequence[str] | None = None,
    limit: int | None = None,
    seed: int = 0,
    batch_size: int = 8,
    use_chat_template: bool | None = None,
    protocol: str = "fast",
    model_name: str | None = None,
    overwrite: bool = False,
    progress: bool = True,
    log: Log | None = None,
    **protocol_overrides: dict[str, Any],
) -> dict[str, dict[str, float]]:
    """Run trust benchmarks on ``model`` and write their files; returns {benchmark: {metric: value}}.

    Args:
        benchmarks: names from ``BENCHMARKS`` (default: all five).
        limit: at most this many source items per prompt pool (deterministic, seeded); None = all.
        use_chat_template: None = when the tokenizer has one; False = plain text.
        protocol: "fast" (short generations, few samples: CPU-sized) or "paper" (the paper's counts).
        protocol_overrides: per benchmark, a dict of protocol settings, plus optionally "source" (a local file
            or ``datasets`` name replacing the shipped data) and, for toxicity, "perspective_api_key";
            e.g. ``toxicity={"num_samples": 5, "scorer": "perspective"}``.
    """
    names = list(benchmarks) if benchmarks is not None else list(BENCHMARKS)
    unknown = sorted(set(names) - set(BENCHMARKS)) + sorted(set(protocol_overrides) - set(BENCHMARKS))
    if unknown:
        raise ValueError(f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be a positive integer or None (all prompts), got {limit}")
    out_dir = Path(out_dir)
    model_name = model_name or str(getattr(model.config, "name_or_path", "") or "model")
    chat = resolve_chat_template(tokenizer, use_chat_template)
    built = [_build(name, protocol, dict(protocol_overrides.get(name, {}))) for name in names]  # fail early
    summaries = {}
    for bench in built:
        summaries[bench.name] = run_benchmark(
            bench, model, tokenizer, out_dir=out_dir / bench.name, limit=limit, seed=seed, batch_size=batch_size,
            chat=chat, model_name=model_name, overwrite=overwrite, progress=progress, log=log,
        )
    _write_results(out_dir, model_name, summaries)
    return {name: summary["metrics"] for name, summary in summaries.items()}


def _build(name: str, protocol: str, overrides: dict[str, Any]) -> TrustBenchmark:
    source = overrides.pop("source", None)
    return get_benchmark(name, protocol=protocol, source=source, **overrides)


def run_benchmark(
    bench: TrustBenchmark, model: Any, tokenizer: Any, *, out_dir: Path, limit: int | None, seed: int,
    batch_size: int, chat: bool, model_name: str, overwrite: bool = False, progress: bool = True,
    log: Log | None = None,
) -> dict[str, Any]:
    """One benchmark end to end; returns its summary (the entry it gets in results.json)."""
    log = log or (lambda message: None)
    prompts = bench.prompts(limit, seed)
    settings = {"benchmark": bench.name, "model": model_name, **bench.settings(), "limit": limit, "seed": seed,
                "batch_size": batch_size, "chat_template": chat, "num_prompts": len(prompts)}
    metrics_path, extra_path = out_dir / "metrics.json", out_dir / f"{bench.extra_name}.jsonl"
    saved = read_json(metrics_path) if metrics_path.exists() and (out_dir / "outputs.jsonl").exists() else None
    if saved and not overwrite and saved.get("settings") == json.loads(json.dumps(json_safe(settings))):
        # generation is skipped; parsing and metrics are redone, so parser fixes reach finished runs
        log(f"{bench.name}: generations with these settings exist, metrics recomputed from {out_dir / 'outputs.jsonl'}")
        records = bench.annotate(read_jsonl_records(out_dir / "outputs.jsonl"))
        extra = read_jsonl_records(extra_path) if bench.extra_name and extra_path.exists() else []
        seconds = saved.get("seconds")
    else:
        start = time.perf_counter()
        records = _generate_all(bench, prompts, model, tokenizer, out_dir, settings, batch_size, seed, chat, progress)
        bench.annotate(records)
        extra = bench.measure_extra(model, tokenizer, prompts, batch_size=batch_size, use_chat_template=chat)
        seconds = round(time.perf_counter() - start, 2)
    write_jsonl(out_dir / "outputs.jsonl", records)
    if bench.extra_name:
        write_jsonl(extra_path, extra)
    files = ["outputs.jsonl"] + ([extra_path.name] if bench.extra_name else [])
    breakdown = bench.breakdown(records)
    if breakdown is not None:
        write_json(out_dir / "breakdown.json", breakdown)
        files += ["breakdown.json"] + [Path(p).name for p in bench.plots(breakdown, out_dir)]
    metrics = bench.metrics(records, extra)
    headline = bench.headline_metric()
    summary = {
        "settings": settings, "metrics": metrics,
        "headline": {"metric": headline, "value": metrics.get(headline), "higher_is_better": bench.higher_is_better},
        "key_metrics": bench.key_metrics(),
        "num_prompts": len(prompts), "num_generations": len(records),
        "seconds": seconds, "files": files,
    }
    write_json(metrics_path, summary)
    (out_dir / "checkpoint.jsonl").unlink(missing_ok=True)
    log(f"{bench.name}: {headline} = {_fmt(metrics.get(headline))} ({len(records)} generations, "
        f"{summary['seconds']:.0f} s)")
    return read_json(metrics_path)


def _generate_all(bench: TrustBenchmark, prompts: list[TrustPrompt], model: Any, tokenizer: Any, out_dir: Path,
                  settings: dict[str, Any], batch_size: int, seed: int, chat: bool, progress: bool) -> list[dict]:
    texts = [render(prompt, tokenizer, chat) for prompt in prompts]
    token_ids = encode(tokenizer, texts, chat)
    samples = bench.protocol.num_samples
    requests = [(p, s) for p in range(len(prompts)) for s in range(samples)]  # (prompt index, sample index)
    batches = plan_batches([len(token_ids[p]) for p, _ in requests], batch_size)
    checkpoint = BatchCheckpoint(out_dir / "checkpoint.jsonl", settings)
    config = generation_config(bench.protocol, model, tokenizer)
    done = sum(len(batches[b]) for b in checkpoint.done if b < len(batches))
    with tqdm(total=len(requests), initial=done, desc=bench.name, unit="gen", disable=not progress) as bar:
        for index, batch in enumerate(batches):
            if index in checkpoint.done:
                continue
            outputs = generate_batch(model, tokenizer, [token_ids[requests[r][0]] for r in batch], config,
                                     batch_seed(seed, index))
            rows = []
            for r, output in zip(batch, outputs):
                p, s = requests[r]
                prompt = prompts[p]
                rows.append({
                    "benchmark": bench.name, "prompt_id": prompt.id, "sample": s, "pool": prompt.pool, "variant": prompt.variant,
                    "prompt": texts[p], "plain_prompt": prompt.question_text(), "generation": output.text,
                    "num_new_tokens": output.num_new_tokens, "finished": output.finished, **prompt.fields,
                })
            checkpoint.append(index, rows)
            bar.update(len(batch))
    by_key = {(row["prompt_id"], row["sample"]): row for rows in checkpoint.done.values() for row in rows}
    return [by_key[(prompts[p].id, s)] for p, s in requests]


def recompute_metrics(benchmark_dir: str | Path) -> dict[str, float]:
    """Metrics from a benchmark's saved outputs (re-parsed with the current code; saved scores are reused)."""
    benchmark_dir = Path(benchmark_dir)
    settings = read_json(benchmark_dir / "metrics.json")["settings"]
    overrides = {key: settings[key] for key in _protocol_keys(settings["benchmark"]) if key in settings}
    bench = get_benchmark(settings["benchmark"], protocol=settings["protocol"], source=settings.get("source"),
                          **overrides)
    records = bench.annotate(read_jsonl_records(benchmark_dir / "outputs.jsonl"))
    extra_path = benchmark_dir / f"{bench.extra_name}.jsonl"
    extra = read_jsonl_records(extra_path) if bench.extra_name and extra_path.exists() else []
    return bench.metrics(records, extra)


def _protocol_keys(name: str) -> list[str]:
    return [f.name for f in dataclasses.fields(benchmark_class(name).protocol_class)]


def _write_results(out_dir: Path, model_name: str, summaries: dict[str, dict[str, Any]]) -> None:
    from trustattr.trust.plots import plot_stage_bars
    from trustattr.trust.tables import results_markdown

    path = out_dir / "results.json"
    previous = read_json(path) if path.exists() else {}
    merged = previous.get("benchmarks", {}) if previous.get("model") == model_name else {}
    merged.update(summaries)
    ordered = {name: merged[name] for name in BENCHMARKS if name in merged}
    results = {"model": model_name, "updated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
               "benchmarks": ordered}
    write_json(path, results)
    with atomic_path(out_dir / "results.md") as tmp:
        tmp.write_text(results_markdown(results), encoding="utf-8")
    plot_stage_bars({model_name: results}, out_dir / "results.png")


def _fmt(value: Any) -> str:
    return "n/a" if value is None else f"{value:.3f}"
