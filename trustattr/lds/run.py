"""``run_lds(LDSArguments) -> LDSResult``: the whole linear-datamodeling benchmark behind ``trustattr lds``.

Stages (each timed): workload -> reference log-probs -> full-data runs (``ensemble`` seeds; epoch
checkpoints of the first for tracin) -> EK-FAC factors of the first (ekfac) -> features (factored projection, and exact gradients) -> score matrices
per method -> retrains on M subsets (cached under ``out/work/retrains``, keyed by content: a rerun resumes) ->
LDS per method with a bootstrap interval -> ``lds.json``, ``lds.md``, ``lds.png``.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from trustattr.attribution.methods import METHOD_REGISTRY, FeatureSet, get_method
from trustattr.attribution.pipeline import PhaseTimer
from trustattr.attribution.store import write_json
from trustattr.lds import report
from trustattr.lds.arguments import LDSArguments
from trustattr.lds.attribute import ekfac_factors, ekfac_set, feature_dims, model_features
from trustattr.lds.metrics import draw_subsets, linear_datamodeling_score, subset_predictions
from trustattr.lds.retrain import EncodedPairs, measure_margins, train_on_subset
from trustattr.lds.workload import Recipe, Workload, pairs_workload, tiny_workload

__all__ = ["LDSResult", "build_workload", "run_lds"]

MAX_EXACT_DIM = 1 << 17  # exact gradients beyond this many features per pair are not scored


@dataclass
class LDSResult:
    out: Path
    rows: list[dict]  # one per (method, features): label, method, features, dim, lds, ci95, per_query, seconds
    subsets: np.ndarray  # [M, N] bool
    measured: np.ndarray  # [M, Q] query margins of the retrained models
    timings: dict[str, float] = field(default_factory=dict)

    def best(self) -> dict:
        return max(self.rows, key=lambda r: -np.inf if np.isnan(r["lds"]) else r["lds"])


def build_workload(args: LDSArguments) -> Workload:
    recipe = Recipe(args.epochs, args.batch_size, args.learning_rate, args.beta, args.seed)
    if args.preset == "tiny":
        return tiny_workload(args.num_train, args.num_queries, args.seed, recipe)
    from trustattr.attribution.trust_side import target_test_side
    from trustattr.preference_data import load_preference_pairs

    train_pairs = load_preference_pairs(args.train_data, split="train", limit=args.num_train, seed=args.seed)
    if args.queries == "trust":
        per_benchmark = max(1, args.num_queries // 5)
        side = target_test_side(("toxicity", "stereotype", "ethics", "truthfulness", "privacy"), per_benchmark,
                                args.seed)
        queries = [p for pairs in side.pairs.values() for p in pairs][: args.num_queries]
    else:
        queries = load_preference_pairs(args.queries, split="all", limit=args.num_queries, seed=args.seed)
    return pairs_workload(args.preset, args.model, train_pairs, queries, recipe, last_k_blocks=args.last_k_blocks,
                          max_length=args.max_length, max_prompt_length=args.max_prompt_length)


class _Progress:
    """A tqdm bar on a terminal, else a log line with the rate and ETA at most every ``every`` seconds."""

    def __init__(self, total: int, desc: str, log, every: float = 10.0) -> None:
        self.total, self.desc, self.log, self.every = total, desc, log, every
        self.done = 0
        self.start = self.last = time.perf_counter()
        self.bar = None
        if sys.stderr.isatty():
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc=desc, unit="retrain")

    def update(self, fresh: bool) -> None:
        self.done += 1
        if self.bar is not None:
            self.bar.update(1)
            return
        now = time.perf_counter()
        if fresh and (now - self.last >= self.every or self.done == self.total):
            rate = self.done / max(now - self.start, 1e-9)
            eta = (self.total - self.done) / max(rate, 1e-9)
            self.log(f"{self.desc}: {self.done}/{self.total}  {rate:.2f} retrains/s  ETA {eta:.0f} s")
            self.last = now

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _retrains(workload: Workload, train: EncodedPairs, queries: EncodedPairs, subsets: np.ndarray, root: Path,
              log) -> np.ndarray:
    """Query margins [M, Q] of a model retrained on each subset (cached per subset, keyed by content)."""
    root.mkdir(parents=True, exist_ok=True)
    base = workload.key()
    measured = np.zeros((subsets.shape[0], len(workload.queries)))
    progress = _Progress(subsets.shape[0], "retrains", log)
    for m, mask in enumerate(subsets):
        members = np.flatnonzero(mask).tolist()
        key = hashlib.sha1(json.dumps({"workload": base, "subset": members}).encode()).hexdigest()[:20]
        path = root / f"{key}.json"
        if path.exists():
            measured[m] = json.loads(path.read_text())["margins"]
            progress.update(fresh=False)
            continue
        model = train_on_subset(workload, train, members, workload.recipe.seed)
        margins = measure_margins(model, queries).numpy()
        write_json(path, {"workload": workload.identity(), "subset": members, "margins": margins.tolist()})
        measured[m] = margins
        progress.update(fresh=True)
    progress.close()
    return measured


def _state_copy(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: t.detach().clone() for name, t in model.state_dict().items()}


def _scored(label: str, name: str, kind: str, damping: float | None, sets: list[FeatureSet]) -> tuple:
    start = time.perf_counter()
    matrix = get_method(name, damping).score_matrix(sets).numpy()  # [N, Q]
    return label, name, kind, matrix, time.perf_counter() - start


def run_lds(args: LDSArguments, log=print) -> LDSResult:
    """Run the benchmark described by ``args``; writes lds.json, lds.md and lds.png to ``args.out``."""
    out = Path(args.out).expanduser()
    timer = PhaseTimer(log)
    with timer("workload"):
        workload = build_workload(args)
        dims = feature_dims(workload, args.k)
        kinds = ["factored"] + (["exact"] if args.exact and dims["exact"] <= MAX_EXACT_DIM else [])
    with timer("reference log-probs"):
        train = EncodedPairs(workload, workload.train_pairs).with_reference(workload.start)
        queries = EncodedPairs(workload, workload.queries).with_reference(workload.start)
    everything = list(range(len(workload.train_pairs)))
    with timer("full-data runs"):
        members, checkpoints = [], []
        for e in range(args.ensemble):
            def keep(epoch, model, e=e):
                if e == 0 and "tracin" in args.methods:
                    checkpoints.append(_state_copy(model))
            members.append(train_on_subset(workload, train, everything, workload.recipe.seed + e, keep))
    sets: dict[str, list[FeatureSet]] = {}
    tracin_sets: dict[str, list[FeatureSet]] = {}
    with timer("features"):
        for kind in kinds:
            sets[kind] = [model_features(workload, m, train, queries, kind, args.k, args.seed) for m in members]
            tracin_sets[kind] = []
            for state in checkpoints:
                model = workload.fresh_model()
                model.load_state_dict(state)
                tracin_sets[kind].append(model_features(workload, model.eval(), train, queries, kind, args.k,
                                                        args.seed, weight=args.learning_rate))
    if "ekfac" in args.methods:
        with timer("ekfac factors"):
            factors = ekfac_factors(workload, members[0], train)
    scored = []  # (label, method, kind, matrix, seconds)
    with timer("scores"):
        for kind in kinds:
            for name in args.methods:
                sweep = args.damping if args.damping and METHOD_REGISTRY[name].default_damping is not None else (None,)
                for damping in sweep:
                    label = name if damping is None else f"{name} (damping {damping:g})"
                    feature_sets = tracin_sets[kind] if name == "tracin" else sets[kind][:1]
                    if name == "ekfac":
                        value = damping if damping is not None else METHOD_REGISTRY[name].default_damping
                        feature_sets = [ekfac_set(workload, members[0], sets[kind][0], queries, factors, kind, args.k,
                                                  args.seed, value)]
                    scored.append(_scored(label, name, kind, damping, feature_sets))
                    if name == "trak" and args.ensemble > 1:
                        ensemble = [FeatureSet(s.train, s.test, 1.0 / args.ensemble, s.blocks, s.train_residual)
                                    for s in sets[kind]]
                        label = f"trak (ensemble of {args.ensemble})" + label[len("trak"):]
                        scored.append(_scored(label, name, kind, damping, ensemble))
    with timer("retrains"):
        subsets = draw_subsets(len(workload.train_pairs), args.num_subsets, args.fraction, args.seed)
        measured = _retrains(workload, train, queries, subsets, out / "work" / "retrains", log)
    rows = []
    for label, method, kind, matrix, seconds in scored:
        score = linear_datamodeling_score(subset_predictions(matrix, subsets), measured, seed=args.seed)
        rows.append({"label": label, "method": method, "features": kind, "dim": dims[kind], **score.to_dict(),
                     "score_seconds": round(seconds, 4)})
    result = LDSResult(out, rows, subsets, measured, dict(timer.seconds))
    report.write_all(out, args, workload, result)
    log(report.table(rows))
    return result
