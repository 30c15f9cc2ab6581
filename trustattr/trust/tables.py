"""Markdown tables of trust results: one model (every metric) and several stages (key metrics side by side)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from trustattr.trust.base import BENCHMARKS

__all__ = ["fmt", "results_markdown", "stages_markdown"]


def fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def _seconds(value: Any) -> str:
    return "n/a" if value is None else f"{value:.0f}"


def _arrow(higher_is_better: bool) -> str:
    return "↑" if higher_is_better else "↓"


def _protocol_line(summary: Mapping[str, Any]) -> str:
    s = summary["settings"]
    sampling = "greedy" if s.get("temperature", 0) == 0 else f"T={s['temperature']}"
    limit = "all items" if s.get("limit") is None else f"≤{s['limit']} items/pool"
    template = "chat template" if s.get("chat_template") else "plain text"
    return (f"protocol `{s.get('protocol')}`, {limit}, {s.get('num_samples')} sample(s)/prompt, {sampling}, "
            f"≤{s.get('max_new_tokens')} new tokens, {template}, seed {s.get('seed')}")


def results_markdown(results: Mapping[str, Any]) -> str:
    """Summary table (headline per benchmark) and one table of every metric per benchmark."""
    benchmarks = results.get("benchmarks", {})
    lines = [f"# Trust evaluation: `{results.get('model')}`", "",
             "| benchmark | headline metric | value | better | prompts | generations | time (s) |",
             "|---|---|---|---|---|---|---|"]
    for name, summary in benchmarks.items():
        head = summary["headline"]
        lines.append(f"| {name} | {head['metric']} | {fmt(head['value'])} | {_arrow(head['higher_is_better'])} | "
                     f"{summary['num_prompts']} | {summary['num_generations']} | {_seconds(summary.get('seconds'))} |")
    for name, summary in benchmarks.items():
        lines += ["", f"## {name}", "", _protocol_line(summary), "", "| metric | value |", "|---|---|"]
        lines += [f"| {metric} | {fmt(value)} |" for metric, value in summary["metrics"].items()]
    return "\n".join(lines) + "\n"


def stages_markdown(stages: Mapping[str, Mapping[str, Any]]) -> str:
    """Rows = (benchmark, key metric), columns = stages (e.g. base, sft, dpo, ppo), in the given stage order."""
    labels = list(stages)
    lines = ["| benchmark | metric | better | " + " | ".join(labels) + " |",
             "|---|---|---|" + "---|" * len(labels)]
    for name in BENCHMARKS:
        present = [stages[label]["benchmarks"][name] for label in labels if name in stages[label].get("benchmarks", {})]
        if not present:
            continue
        metrics = list(dict.fromkeys(m for summary in present for m in summary.get("key_metrics") or
                                     [summary["headline"]["metric"]]))
        arrow = _arrow(present[0]["headline"]["higher_is_better"])
        for metric in metrics:
            cells = []
            for label in labels:
                summary = stages[label].get("benchmarks", {}).get(name)
                cells.append(fmt(summary["metrics"].get(metric)) if summary else "–")
            lines.append(f"| {name} | {metric} | {arrow} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
