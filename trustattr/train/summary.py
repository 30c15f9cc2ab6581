"""The run summary: held-out metrics before/after each training stage, trust results per stage, curves."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from trustattr.paths import atomic_path
from trustattr.train.plots import curve
from trustattr.train.stage_dir import write_json

__all__ = ["write_summary"]

STAGE_ORDER = ("base", "sft", "dpo", "rm", "ppo")

# (stage, log key, panel title) of the combined curves figure
CURVES = (
    ("sft", "loss", "SFT loss"),
    ("dpo", "loss", "DPO loss"),
    ("dpo", "rewards/accuracies", "DPO train accuracy"),
    ("rm", "loss", "RM loss"),
    ("rm", "accuracy", "RM train accuracy"),
    ("ppo", "reward", "PPO mean RM reward"),
    ("ppo", "kl", "PPO KL to reference"),
)


def write_summary(run_dir: Path, status: dict[str, Any]) -> dict[str, Any]:
    """Write RUN/summary.json, RUN/summary.md and RUN/curves.png from run.json's status and stage metrics."""
    stages = status.get("stages", {})
    summary = {
        "training": {name: _pick(stages[name].get("summary", {}), ("seconds", "before", "after", "resumed_from_step"))
                     for name in STAGE_ORDER if name in stages and name != "base"},
        "trust": {stage: stages[f"eval-{stage}"].get("summary", {})
                  for stage in STAGE_ORDER if f"eval-{stage}" in stages},
        "seconds": {name: rec.get("seconds") for name, rec in stages.items()},
    }
    write_json(run_dir / "summary.json", summary)
    with atomic_path(run_dir / "summary.md") as tmp:
        tmp.write_text(_markdown(summary))
    _plot(run_dir)
    return summary


def _pick(record: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    return {key: record.get(key) for key in keys}


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, (int, float)) else ("–" if value is None else str(value))


def _markdown(summary: dict[str, Any]) -> str:
    lines = ["# Run summary", "", "## Training stages (held-out split)", "",
             "| stage | seconds | metric | before | after |", "|---|---|---|---|---|"]
    for name, record in summary["training"].items():
        before, after = record.get("before") or {}, record.get("after") or {}
        for metric in sorted(set(before) | set(after)):
            if metric == "pairs" or metric == "prompts":
                continue
            lines.append(f"| {name} | {_fmt(record.get('seconds'))} | {metric} | {_fmt(before.get(metric))} | "
                         f"{_fmt(after.get(metric))} |")
    lines += ["", "## Trust benchmarks after each stage", ""]
    trust = summary["trust"]
    rows = sorted({(bench, metric) for results in trust.values() if isinstance(results, dict)
                   for bench, metrics in results.items() if isinstance(metrics, dict) for metric in metrics})
    if rows:
        lines += ["| benchmark | metric | " + " | ".join(trust) + " |", "|---|---|" + "---|" * len(trust)]
        for bench, metric in rows:
            cells = [_fmt(trust[stage].get(bench, {}).get(metric)) for stage in trust]
            lines.append(f"| {bench} | {metric} | " + " | ".join(cells) + " |")
    else:
        lines.append("(no trust evaluation in this run)")
    return "\n".join(lines) + "\n"


def _plot(run_dir: Path) -> None:
    panels = []
    for stage, key, title in CURVES:
        path = run_dir / "stages" / stage / "metrics.json"
        if path.exists():
            steps, values = curve(json.loads(path.read_text()).get("log_history", []), key)
            if steps:
                panels.append((title, steps, values))
    if not panels:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = min(4, len(panels))
    rows = (len(panels) + columns - 1) // columns
    figure, axes = plt.subplots(rows, columns, figsize=(4 * columns, 3 * rows), squeeze=False)
    for axis in axes.flat[len(panels):]:
        axis.set_visible(False)
    for axis, (title, steps, values) in zip(axes.flat, panels):
        axis.plot(steps, values, marker="o", markersize=3)
        axis.set_title(title)
        axis.set_xlabel("step")
        axis.grid(alpha=0.3)
    figure.tight_layout()
    with atomic_path(run_dir / "curves.png") as tmp:
        figure.savefig(tmp, dpi=110, format="png")
    plt.close(figure)
