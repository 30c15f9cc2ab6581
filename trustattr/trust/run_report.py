"""``trustattr report RUN_DIR``: one Markdown page with a run's trust evaluations and attribution scores.

Reads (each part optional except the evaluations):
    RUN/run.json                          arguments and stage status (``trustattr run``)
    RUN/eval/<stage>/results.json         trust metrics per stage (``trustattr eval``)
    RUN/score/<stage>/summary.json        attribution summary per stage (``trustattr score``)
    RUN/score/<stage>/report.md           the engine's own report, embedded
Writes RUN/report.md and RUN/report_stages.png. A folder holding ``results.json`` itself, or stage folders
with ``results.json`` directly, is accepted too (an ``trustattr eval`` output folder).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from trustattr.errors import DataError
from trustattr.paths import atomic_path
from trustattr.trust.plots import plot_stage_bars
from trustattr.trust.store import read_json
from trustattr.trust.tables import fmt, results_markdown, stages_markdown

__all__ = ["STAGE_ORDER", "find_stage_results", "render_run_report"]

STAGE_ORDER = ("base", "sft", "dpo", "rm", "ppo")


def _stage_key(name: str) -> tuple[int, str]:
    return (STAGE_ORDER.index(name), name) if name in STAGE_ORDER else (len(STAGE_ORDER), name)


def find_stage_results(run_dir: Path) -> dict[str, dict[str, Any]]:
    """{stage: results.json content}, stages in pipeline order (base, sft, dpo, rm, ppo, then others by name)."""
    eval_dir = run_dir / "eval" if (run_dir / "eval").is_dir() else run_dir
    if (eval_dir / "results.json").exists() and not any(eval_dir.glob("*/results.json")):
        results = read_json(eval_dir / "results.json")
        return {Path(str(results.get("model", "model"))).name or "model": results}
    stages = sorted((p.parent.name for p in eval_dir.glob("*/results.json")), key=_stage_key)
    return {stage: read_json(eval_dir / stage / "results.json") for stage in stages}


def _run_section(run_dir: Path) -> list[str]:
    path = run_dir / "run.json"
    if not path.exists():
        return []
    run = read_json(path)
    lines = ["## Run", ""]
    status = run.get("stages") or run.get("status")
    if isinstance(status, dict):
        lines += ["| stage | status |", "|---|---|"]
        lines += [f"| {stage} | {value if not isinstance(value, dict) else value.get('status', json.dumps(value))} |"
                  for stage, value in status.items()]
    arguments = run.get("arguments")
    if isinstance(arguments, dict):
        lines += ["", "<details><summary>arguments</summary>", "", "```json", json.dumps(arguments, indent=2), "```",
                  "", "</details>"]
    return lines + [""]


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, (int, float, str, bool))


def _summary_tables(summary: dict[str, Any]) -> list[str]:
    """The summary's scalar fields as one table, and each {name: {field: scalar}} field as a table of its own."""
    lines = []
    scalars = {k: v for k, v in summary.items() if _is_scalar(v)}
    if scalars:
        lines += ["| field | value |", "|---|---|"] + [f"| {k} | {fmt(v)} |" for k, v in scalars.items()] + [""]
    for key, value in summary.items():
        if isinstance(value, dict) and value and all(isinstance(v, dict) for v in value.values()):
            columns = list(dict.fromkeys(c for row in value.values() for c, x in row.items() if _is_scalar(x)))
            if columns:
                lines += [f"**{key}**", "", f"| {key} | " + " | ".join(columns) + " |",
                          "|---|" + "---|" * len(columns)]
                lines += [f"| {name} | " + " | ".join(fmt(row.get(c)) for c in columns) + " |"
                          for name, row in value.items()] + [""]
    return lines


def _score_section(run_dir: Path) -> list[str]:
    score_dir = run_dir / "score"
    stages = sorted((p.name for p in score_dir.iterdir() if p.is_dir()), key=_stage_key) if score_dir.is_dir() else []
    if not stages:
        return ["## Attribution", "", "No attribution scores in this run yet (RUN/score/<stage>/).", ""]
    lines = ["## Attribution", ""]
    for stage in stages:
        folder = score_dir / stage
        lines += [f"### {stage}", ""]
        summary_path = folder / "summary.json"
        if summary_path.exists():
            lines += _summary_tables(read_json(summary_path))
        report = folder / "report.md"
        if report.exists():
            body = report.read_text(encoding="utf-8").strip()
            lines += [("###" + line) if line.startswith("#") else line for line in body.splitlines()] + [""]
        for image in sorted(folder.glob("*.png")):
            lines += [f"![{stage} {image.stem}]({image.relative_to(run_dir).as_posix()})", ""]
    return lines


def render_run_report(run_dir: str | Path) -> Path:
    """Write RUN/report.md (+ RUN/report_stages.png) and return the Markdown path."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise DataError(f"run folder '{run_dir}' does not exist")
    stages = find_stage_results(run_dir)
    if not stages:
        raise DataError(f"no trust evaluations under '{run_dir}': expected RUN/eval/<stage>/results.json "
                        "(run `trustattr eval --out RUN/eval/<stage>` first)")
    plot = plot_stage_bars(stages, run_dir / "report_stages.png")
    lines = [f"# trustattr report: `{run_dir.name}`", ""] + _run_section(run_dir)
    lines += ["## Trust metrics per stage", "", stages_markdown(stages).rstrip(), "",
              f"![headline metric per stage]({plot.name})", ""]
    lines += _score_section(run_dir)
    lines += ["## Details per stage", ""]
    for stage, results in stages.items():
        body = results_markdown(results).splitlines()[1:]  # drop its title
        lines += [f"### {stage}", ""] + [("##" + line) if line.startswith("## ") else line for line in body] + [""]
    path = run_dir / "report.md"
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines).rstrip() + "\n", encoding="utf-8")
    return path
