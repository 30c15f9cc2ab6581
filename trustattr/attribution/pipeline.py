"""``score(ScoreArguments) -> ScoreResult``: the whole attribution run behind ``trustattr score``.

Phases (each timed; ``summary.json`` and the console show where the time went):
    data -> models -> reference log-probs (dpo) -> policy (``auto``: LoRA-DPO) -> test pairs ->
    train features (store shards, split across ranks) -> test features -> scores -> outputs
Outputs in ``out``: scores.npz, summary.json, report.md, score_distributions.png; intermediate stores under
``out/work/`` make a rerun with the same arguments resume. Inputs are validated before ``out`` is created. If
the run fails, whatever it created in ``out`` is removed again (all of ``out`` if it did not exist before; what
was there, e.g. the stores of an earlier run, is kept): a user error (e.g. NaN losses) is re-raised as it is, any
other exception as a :class:`ScoringError` naming the phase it happened in, with the original as ``__cause__``.
"""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from trustattr.attribution import report
from trustattr.attribution.arguments import ScoreArguments
from trustattr.attribution.distributed import current_topology
from trustattr.attribution.methods import get_method, sign_normalize
from trustattr.attribution.store import write_json
from trustattr.attribution.workflow import Workflow
from trustattr.errors import TrustAttrError

__all__ = ["PhaseTimer", "ScoreResult", "ScoringError", "score"]

Log = Callable[[str], None]


class ScoringError(TrustAttrError):
    """An unexpected failure inside a scoring run (a bug or an unforeseen input), named by its phase."""


class PhaseTimer:
    """Wall-clock seconds per named phase, in the order they ran; ``failed_phase``: the innermost phase that
    raised (None while nothing has)."""

    def __init__(self, log: Log) -> None:
        self.seconds: dict[str, float] = {}
        self.log = log
        self.failed_phase: str | None = None

    @contextlib.contextmanager
    def __call__(self, phase: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        except BaseException:
            if self.failed_phase is None:
                self.failed_phase = phase
            raise
        finally:
            elapsed = time.perf_counter() - start
            self.seconds[phase] = self.seconds.get(phase, 0.0) + elapsed
            self.log(f"[{phase}] {elapsed:.1f} s")


@dataclass(frozen=True)
class ScoreResult:
    out_dir: Path
    pair_ids: list[str]
    benchmarks: list[str]
    raw: np.ndarray  # [N, B] paper sign: + = up-weighting the pair raises the benchmark's test loss
    normalized: np.ndarray  # [N, B] raw, sign-normalised to [-1, 1]
    trust: np.ndarray  # [N, B] -raw * direction: + = the pair made the model more trustworthy
    trust_normalized: np.ndarray  # [N, B]
    directions: dict[str, int]
    timings: dict[str, float]
    summary: dict


def score(args: ScoreArguments, *, progress: bool = True, log: Log = print) -> ScoreResult | None:
    """Run the attribution described by ``args``; returns the result on rank 0 (None on other ranks)."""
    topology = current_topology()
    timer = PhaseTimer(log if topology.is_main else (lambda message: None))
    out = Path(args.out).expanduser()
    existing = set(out.iterdir()) if out.is_dir() else None  # what a failed run must leave in place
    workflow = Workflow(args, topology, timer, progress and topology.is_main)
    try:
        workflow.prepare()  # validates data, models and modules; writes nothing
        sets = workflow.run(out / "work")
        if not topology.is_main:
            return None
        with timer("scores"):
            result = _score_all(args, workflow, sets, out, timer.seconds)
        log(_timing_table(timer.seconds))
        return result
    except Exception as exc:
        if topology.is_main:
            _remove_created(out, existing)
        if isinstance(exc, TrustAttrError):
            raise
        phase = timer.failed_phase or "setup"
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise ScoringError(
            f"scoring failed in the '{phase}' phase with an unexpected {type(exc).__name__}: {first} "
            f"(nothing was left in '{out}'; TRUSTATTR_DEBUG=1 shows the traceback)"
        ) from exc


def _remove_created(out: Path, existing: set[Path] | None) -> None:
    """Remove what a failed run created under ``out``: all of it if ``out`` was new, else its new entries."""
    if existing is None:
        shutil.rmtree(out, ignore_errors=True)
        return
    if not out.is_dir():
        return
    for path in out.iterdir():
        if path not in existing:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)


def _score_all(args: ScoreArguments, workflow: Workflow, sets, out: Path, timings: dict[str, float]) -> ScoreResult:
    method = get_method(args.method, args.damping, args.normalize)
    names = list(args.benchmarks)
    raw = np.zeros((len(workflow.pairs), len(names)))
    for col, name in enumerate(names):
        raw[:, col] = method.scores([s.for_benchmark(name) for s in sets]).numpy()
    directions = {name: workflow.test_side.directions[name] for name in names}
    sign = np.array([directions[n] if directions[n] != 0 else 1 for n in names], dtype=np.float64)
    trust = -raw * sign
    normalized = sign_normalize(torch.from_numpy(raw)).numpy()
    trust_normalized = sign_normalize(torch.from_numpy(trust)).numpy()
    ids = [p.id for p in workflow.pairs]
    summary = _summary(args, workflow, names, raw, trust_normalized, directions, timings)
    _write_outputs(out, args, workflow, ids, names, raw, normalized, trust, trust_normalized, directions, summary,
                   timings)
    return ScoreResult(out, ids, names, raw, normalized, trust, trust_normalized, directions, dict(timings), summary)


def _summary(args, workflow, names, raw, trust_normalized, directions, timings) -> dict:
    per_benchmark = {}
    for col, name in enumerate(names):
        order = np.argsort(-trust_normalized[:, col], kind="stable")
        per_benchmark[name] = {
            "direction": directions[name],
            "num_test_pairs": len(workflow.test_side.pairs[name]),
            "raw_mean": float(raw[:, col].mean()), "raw_std": float(raw[:, col].std()),
            "share_trust_helping": float((trust_normalized[:, col] > 0).mean()),
            "top_helping": [workflow.pairs[i].id for i in order[: args.top]],
            "top_harming": [workflow.pairs[i].id for i in order[::-1][: args.top]],
        }
    return {
        "arguments": args.to_dict(),
        "num_pairs": len(workflow.pairs),
        "policy": workflow.policy_name,
        "modules": workflow.module_names,
        "feature_dim": workflow.feature_dim,
        "states": workflow.state_names,
        "notes": workflow.notes,
        "ops": workflow.ops_info(),
        "benchmarks": per_benchmark,
        "timings_s": {k: round(v, 2) for k, v in timings.items()},
        "sign_convention": report.SIGN_NOTE,
    }


def _write_outputs(out, args, workflow, ids, names, raw, normalized, trust, trust_normalized, directions, summary,
                   timings) -> None:
    from trustattr.paths import atomic_path

    with atomic_path(out / "scores.npz") as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, pair_ids=np.array(ids), benchmarks=np.array(names), raw=raw, normalized=normalized,
                     trust=trust, trust_normalized=trust_normalized,
                     directions=np.array([directions[n] for n in names]))
    write_json(out / "summary.json", summary)
    header = {"method": args.method, "loss": args.loss, "test side": args.test_side, "policy": workflow.policy_name,
              "reference": args.reference, "training pairs": f"{len(ids)} from '{args.train_data}'",
              "tracked modules": f"{len(workflow.module_names)} ({args.projection} projection, k={args.k}, "
                                 f"{workflow.feature_dim} features)",
              "ids hash": hashlib.sha1("\n".join(ids).encode()).hexdigest()[:12]}
    report.write_report(out / "report.md", pairs=workflow.pairs, benchmarks=names, raw=raw,
                        trust_normalized=trust_normalized, directions=directions, header=header, top=args.top,
                        timings=timings)
    report.write_plot(out / "score_distributions.png", names, trust_normalized, args.method)


def _timing_table(seconds: dict[str, float]) -> str:
    total = sum(seconds.values())
    lines = ["where the time went:"]
    lines += [f"  {phase:<22} {s:8.1f} s  {100 * s / max(total, 1e-9):5.1f}%" for phase, s in seconds.items()]
    lines.append(f"  {'total':<22} {total:8.1f} s")
    return "\n".join(lines)
