"""Outputs of ``trustattr lds``: lds.json (everything), lds.md (the table), lds.png (LDS per method, 95% CI)."""

from __future__ import annotations

import math
import platform
from pathlib import Path

import numpy as np

from trustattr.attribution.store import write_json
from trustattr.paths import atomic_path

__all__ = ["table", "write_all"]


def _fmt(value: float) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3f}"


def _sorted(rows: list[dict]) -> list[dict]:
    return sorted(rows, key=lambda r: -(r["lds"] if not math.isnan(r["lds"]) else -math.inf))


def table(rows: list[dict]) -> str:
    """The Markdown table: one line per (method, features), best LDS first."""
    lines = ["| method | features | dim | LDS | 95% CI | score time |", "|---|---|---:|---:|---|---:|"]
    for r in _sorted(rows):
        low, high = r["ci95"]
        lines.append(f"| {r['label']} | {r['features']} | {r['dim']} | {_fmt(r['lds'])} | "
                     f"[{_fmt(low)}, {_fmt(high)}] | {r['score_seconds']:.3f} s |")
    return "\n".join(lines)


def write_all(out: Path, args, workload, result) -> None:
    out.mkdir(parents=True, exist_ok=True)
    best = result.best()
    payload = {
        "arguments": args.to_dict(), "workload": workload.identity(), "machine": platform.processor() or
        platform.machine(), "best": {"label": best["label"], "features": best["features"], "lds": best["lds"]},
        "rows": _sorted(result.rows), "timings_s": {k: round(v, 2) for k, v in result.timings.items()},
        "measured_margins": {"mean": float(result.measured.mean()), "std_over_subsets_mean":
                             float(result.measured.std(0).mean())},
    }
    write_json(out / "lds.json", payload)
    header = [
        f"# Linear datamodeling score — workload `{workload.name}`", "",
        f"{len(workload.train_pairs)} training pairs, {len(workload.queries)} queries, {args.num_subsets} retrains "
        f"on {args.fraction:.0%} subsets (recipe: {workload.identity()['recipe']}). Measurement: each query's DPO "
        "margin on the retrained model; LDS = mean over queries of the Spearman correlation between the "
        "method's subset sums and the measured margins; 95% bootstrap interval over queries.", "",
        f"Best: **{best['label']}** on {best['features']} features, LDS {_fmt(best['lds'])}.", "",
        table(result.rows), "",
        "Time per stage: " + ", ".join(f"{k} {v:.1f} s" for k, v in result.timings.items()), "",
    ]
    with atomic_path(out / "lds.md") as tmp:
        tmp.write_text("\n".join(header))
    _plot(out / "lds.png", result.rows, workload.name)


def _plot(path: Path, rows: list[dict], name: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ordered = _sorted(rows)[::-1]
    labels = [f"{r['label']} [{r['features']}]" for r in ordered]
    values = np.array([r["lds"] for r in ordered], dtype=float)
    low = np.array([r["ci95"][0] if r["ci95"][0] is not None else np.nan for r in ordered], dtype=float)
    high = np.array([r["ci95"][1] if r["ci95"][1] is not None else np.nan for r in ordered], dtype=float)
    errors = np.nan_to_num(np.stack([values - low, high - values]), nan=0.0)
    colors = ["tab:blue" if r["features"] == "factored" else "tab:orange" for r in ordered]
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(rows) + 1.2))
    ax.barh(labels, np.nan_to_num(values), xerr=errors, color=colors, capsize=3)
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_xlabel("LDS (Spearman, mean over queries; 95% CI)")
    ax.set_title(f"trustattr lds — {name}\nblue: projected features, orange: exact gradients", fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
