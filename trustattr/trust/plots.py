"""Figures: the headline metric of each benchmark across stages (like the paper's figures) and the
stereotype agreeability heatmaps (group x topic, one panel per system prompt)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from trustattr.paths import atomic_path  # noqa: E402
from trustattr.trust.base import BENCHMARKS  # noqa: E402

__all__ = ["plot_agreeability_heatmaps", "plot_stage_bars"]


def _save(fig: Any, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, bbox_inches="tight", format=Path(path).suffix.lstrip(".") or "png")
    plt.close(fig)
    return Path(path)


def plot_stage_bars(stages: Mapping[str, Mapping[str, Any]], path: str | Path) -> Path:
    """One panel per benchmark, one bar per stage (model), the benchmark's headline metric on the y axis."""
    labels = list(stages)
    names = [n for n in BENCHMARKS if any(n in stages[label].get("benchmarks", {}) for label in labels)]
    fig, axes = plt.subplots(1, max(len(names), 1), figsize=(2.6 * max(len(names), 1) + 0.6, 3.2), squeeze=False)
    colors = plt.get_cmap("tab10").colors
    for ax, name in zip(axes[0], names):
        summaries = [stages[label]["benchmarks"].get(name) for label in labels]
        head = next(s["headline"] for s in summaries if s)
        values = [s["metrics"].get(head["metric"]) if s else None for s in summaries]
        heights = [0.0 if v is None or (isinstance(v, float) and math.isnan(v)) else v for v in values]
        bars = ax.bar(range(len(labels)), heights, color=[colors[i % len(colors)] for i in range(len(labels))])
        for bar, value in zip(bars, values):
            text = "n/a" if value is None else f"{value:.2f}"
            ax.annotate(text, (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center", va="bottom",
                        fontsize=8, xytext=(0, 2), textcoords="offset points")
        ax.set_xticks(range(len(labels)), labels, rotation=30 if len(labels) > 3 else 0, ha="right"
                      if len(labels) > 3 else "center")
        ax.set_title(f"{name}\n{head['metric']} ({'↑' if head['higher_is_better'] else '↓'})", fontsize=9)
        ax.set_ylim(0, max(1.0, max(heights) * 1.15))
        ax.tick_params(labelsize=8)
    if not names:
        axes[0][0].set_axis_off()
    fig.tight_layout()
    return _save(fig, Path(path))


def plot_agreeability_heatmaps(breakdown: Mapping[str, Any], path: str | Path) -> Path:
    """Agreeability per (target group, stereotype topic), one panel per system prompt, 0 (white) to 1."""
    variants = list(breakdown)
    fig, axes = plt.subplots(1, len(variants), figsize=(4.6 * len(variants) + 2.0, 7.5), squeeze=False,
                             layout="constrained")
    cmap = plt.get_cmap("Reds").with_extremes(bad="#d9d9d9")  # grey: no statement of that (group, topic) sampled
    image = None
    for column, (ax, variant) in enumerate(zip(axes[0], variants)):
        data = breakdown[variant]
        matrix = [[math.nan if v is None else v for v in row] for row in data["agreeability"]]
        image = ax.imshow(matrix, vmin=0.0, vmax=1.0, cmap=cmap, aspect="auto")
        ax.set_xticks(range(len(data["topics"])), data["topics"], rotation=60, ha="right", fontsize=8)
        ax.set_yticks(range(len(data["groups"])), data["groups"] if column == 0 else [], fontsize=8)
        ax.set_title(f"agreeability, {variant} system prompt", fontsize=10)
    if image is not None:
        fig.colorbar(image, ax=axes[0].tolist(), shrink=0.6, label="agreeability index (grey: no data)")
    return _save(fig, Path(path))
