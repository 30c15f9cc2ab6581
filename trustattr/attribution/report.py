"""report.md (top trust-helping / trust-harming training pairs per benchmark) and score_distributions.png."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from trustattr.paths import atomic_path

__all__ = ["excerpt", "write_plot", "write_report"]

SIGN_NOTE = (
    "**Reading the scores.** `raw` is the method's estimate of how much up-weighting the training pair changes the "
    "benchmark's test loss (paper sign: negative = the pair lowered the test loss, i.e. pushed the model toward "
    "the test pairs' *chosen* side). `trust = -raw x direction`, where direction = +1 when the chosen side is the "
    "trustworthy one (always for `--test-side target`; for `paper` when the stage improved the benchmark): "
    "**trust > 0 = the pair made the model more trustworthy on that benchmark**, trust < 0 = less. "
    "`*_normalized` divide positives by the largest positive and negatives by |most negative| (paper §4.6)."
)


def excerpt(text: str, limit: int = 160) -> str:
    """One markdown-table-safe line of at most ``limit`` characters."""
    flat = " ".join(text.replace("|", "/").split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def _last_turn(prompt: str) -> str:
    cut = prompt.rfind("Human:")
    return prompt[cut + len("Human:") :].removesuffix("Assistant:").strip() if cut >= 0 else prompt


def _table(order: Sequence[int], pairs: Sequence[Any], trust: np.ndarray, raw: np.ndarray, col: int) -> list[str]:
    lines = ["| # | pair | trust (norm.) | raw | prompt (last turn) | chosen | rejected |",
             "|---|---|---|---|---|---|---|"]
    for rank, i in enumerate(order, start=1):
        p = pairs[i]
        lines.append(f"| {rank} | `{p.id}` | {trust[i, col]:+.3f} | {raw[i, col]:+.3g} "
                     f"| {excerpt(_last_turn(p.prompt))} | {excerpt(p.chosen)} | {excerpt(p.rejected)} |")
    return lines


def write_report(path: Path, *, pairs: Sequence[Any], benchmarks: Sequence[str], raw: np.ndarray,
                 trust_normalized: np.ndarray, directions: dict[str, int], header: dict[str, Any], top: int,
                 timings: dict[str, float]) -> None:
    """Markdown report: settings, sign convention, per benchmark the ``top`` most helping / harming pairs."""
    lines = ["# Which preference pairs moved each trust benchmark", ""]
    lines += [f"- **{key}**: {value}" for key, value in header.items()]
    lines += ["", SIGN_NOTE, ""]
    for col, name in enumerate(benchmarks):
        direction = directions[name]
        lines += [f"## {name}", ""]
        if direction == 0:
            lines += ["The stage did not move this benchmark's headline metric, so the trust sign is unknown: the "
                      "tables rank by how much a pair pushed the model toward the post-stage behaviour.", ""]
        column = trust_normalized[:, col]
        n = min(top, len(column))
        helping = np.argsort(-column, kind="stable")[:n]
        harming = np.argsort(column, kind="stable")[:n]
        lines += [f"### Top {n} trust-helping pairs", ""] + _table(helping, pairs, trust_normalized, raw, col) + [""]
        lines += [f"### Top {n} trust-harming pairs", ""] + _table(harming, pairs, trust_normalized, raw, col) + [""]
    lines += ["## Where the time went", "", "| phase | seconds |", "|---|---|"]
    lines += [f"| {phase} | {seconds:.1f} |" for phase, seconds in timings.items()]
    lines += ["", "![score distributions](score_distributions.png)", ""]
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines))


def write_plot(path: Path, benchmarks: Sequence[str], trust_normalized: np.ndarray, method: str) -> None:
    """One histogram per benchmark of the sign-normalised trust scores."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(benchmarks), figsize=(3.2 * len(benchmarks), 2.8), squeeze=False, sharey=True)
    bins = np.linspace(-1, 1, 41)
    for col, (ax, name) in enumerate(zip(axes[0], benchmarks, strict=True)):
        values = trust_normalized[:, col]
        ax.hist(values[values >= 0], bins=bins, color="tab:green", label="helping")
        ax.hist(values[values < 0], bins=bins, color="tab:red", label="harming")
        ax.set_title(name)
        ax.set_xlabel("trust score (normalised)")
    axes[0][0].set_ylabel("training pairs")
    axes[0][-1].legend(fontsize=7)
    fig.suptitle(f"Attribution scores ({method}) of the training pairs per trust benchmark", fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
