"""Training curves (loss, rewards, KL) as PNG files."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from trustattr.paths import atomic_path

__all__ = ["curve", "plot_curves"]


def curve(log_history: Sequence[dict[str, Any]], key: str) -> tuple[list[float], list[float]]:
    """(steps, values) of one logged quantity; entries without it are skipped."""
    steps, values = [], []
    for entry in log_history:
        if key in entry and isinstance(entry[key], (int, float)) and "step" in entry:
            steps.append(float(entry["step"]))
            values.append(float(entry[key]))
    return steps, values


def plot_curves(log_history: Sequence[dict[str, Any]], keys: Sequence[str], target: Path, title: str = "") -> None:
    """One panel per key that has data; nothing is written when no key has data."""
    panels = [(key, *curve(log_history, key)) for key in keys]
    panels = [panel for panel in panels if panel[1]]
    if not panels:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.2), squeeze=False)
    for axis, (key, steps, values) in zip(axes[0], panels):
        axis.plot(steps, values, marker="o", markersize=3)
        axis.set_xlabel("step")
        axis.set_title(key)
        axis.grid(alpha=0.3)
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    with atomic_path(target) as tmp:
        figure.savefig(tmp, dpi=110, format="png")
    plt.close(figure)
