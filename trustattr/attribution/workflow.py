"""Workflow: the phases of one attribution run, from inputs to projected train/test features per model state.

:meth:`Workflow.prepare` loads and validates everything (data, models, tracked modules, test pairs) and
writes nothing. :meth:`Workflow.run` builds the stores under ``work/`` (resuming from what is there) and, on
rank 0, returns the features of each model state (the final policy, or each saved checkpoint for tracin/less).
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from trustattr.attribution import kernels
from trustattr.attribution.arguments import ScoreArguments
from trustattr.attribution.attributor import TIED_HEAD_NOTE, Attributor, reference_logprobs, tracked_tied_head
from trustattr.attribution.checkpoints import CheckpointInfo, list_checkpoints, load_adam_state
from trustattr.attribution.distributed import Topology, rank_shards
from trustattr.attribution.exact import ExactGradients
from trustattr.attribution.loading import DTYPE_BY_NAME, fingerprint, load_causal_lm, load_reward_model, load_tokenizer
from trustattr.attribution.losses import PairLoss, make_loss
from trustattr.attribution.methods import METHOD_REGISTRY, FeatureSet
from trustattr.attribution.modules import select_modules
from trustattr.attribution.preconditioning import AdamProjector
from trustattr.attribution.projector import Projector
from trustattr.attribution.store import FeatureStore
from trustattr.attribution.trust_side import TestSide, paper_test_pairs, target_test_side
from trustattr.errors import DataError
from trustattr.preference_data import is_shipped, load_preference_pairs
from trustattr.train.reward import reward_at_last_token

__all__ = ["BLOCK_METHODS", "OUTER_ONE_BLOCK_NOTE", "StateFeatures", "Workflow"]

BLOCK_METHODS = ("datainf", "datainf_exact", "whitened_cosine")  # a curvature per per-layer feature block
OUTER_ONE_BLOCK_NOTE = (
    "{method} with --projection outer: one global sketch mixes all tracked modules, so there are no per-layer "
    "blocks and {method} treats the whole outer sketch ({k} features) as ONE block (one curvature, one damping); "
    "use --projection factored for per-layer blocks"
)


@dataclass
class StateFeatures:
    """Features of one model state (weight = its learning rate for tracin/less, else 1)."""

    name: str
    weight: float
    train: torch.Tensor  # [N, dim]
    tests: dict[str, torch.Tensor] = field(default_factory=dict)  # benchmark -> [M, dim]
    blocks: list[int] = field(default_factory=list)
    residual: torch.Tensor | None = None  # [N] sigma(-f) of each train pair (trak's Q), dpo/reward losses
    train_norms: torch.Tensor | None = None  # [N] g^T H^-1 g (ekfac with normalize)
    test_norms: dict[str, torch.Tensor] = field(default_factory=dict)  # benchmark -> [M] v^T H^-1 v

    def for_benchmark(self, name: str) -> FeatureSet:
        return FeatureSet(self.train, self.tests[name], self.weight, self.blocks, self.residual, self.train_norms,
                          self.test_norms.get(name))


def _data_identity(pairs, **source) -> dict:
    digest = hashlib.sha1()
    for p in pairs:
        digest.update(f"{p.id}\x00{p.prompt}\x00{p.chosen}\x00{p.rejected}\x01".encode())
    return {**source, "num_pairs": len(pairs), "sha1": digest.hexdigest()}


class Workflow:
    def __init__(self, args: ScoreArguments, topology: Topology, timer: Callable, progress: bool) -> None:
        self.args, self.topology, self.timer, self.progress = args, topology, timer, progress
        self.method = METHOD_REGISTRY[args.method]
        self.dtype = DTYPE_BY_NAME[args.dtype]
        self.policy_name = args.policy
        self.state_names: list[str] = []
        self.module_names: list[str] = []
        self.feature_dim = 0
        self.notes: list[str] = []  # caveats of this run (warned, and listed in summary.json)

    def _note(self, message: str, warn: bool = True) -> None:
        if message not in self.notes:
            self.notes.append(message)
            if warn:
                warnings.warn(message, UserWarning, stacklevel=3)

    # ------------------------------------------------------------------ prepare
    def prepare(self) -> None:
        a = self.args
        with self.timer("data"):
            split = a.split or ("train" if is_shipped(a.train_data) else "all")  # user data is used whole
            self.pairs = load_preference_pairs(a.train_data, split=split, limit=a.limit or None, seed=a.seed,
                                               progress=getattr(self.timer, "log", None))  # rows/s on long reads
            self.data_id = _data_identity(self.pairs, source=a.train_data, split=split, limit=a.limit, seed=a.seed)
            self.test_side: TestSide | None = target_test_side(a.benchmarks, a.test_limit, a.seed) \
                if a.test_side == "target" else None
            if self.test_side is not None:
                empty = [name for name, pairs in self.test_side.pairs.items() if not pairs]
                if empty:
                    raise DataError(f"trust benchmark(s) {', '.join(empty)} gave no test pairs")
        with self.timer("models"):
            self.tokenizer = load_tokenizer(a.reference if a.loss != "reward" else a.policy)
            self.loss = self._make_loss()
            self.pair_loss = make_loss("dpo", a.max_length, a.max_prompt_length, a.beta)  # reference log-probs
            self.reference = None
            if a.loss == "dpo" or a.policy == "auto":
                self.reference = load_causal_lm(a.reference, self.dtype)
                self.reference_fp = fingerprint(self.reference)
            self.policy = None if a.policy == "auto" else self._load_policy(a.policy)
            self.checkpoints: list[CheckpointInfo] = list_checkpoints(a.checkpoints) if a.checkpoints else []
            probe = self.policy if self.policy is not None else self.reference
            modules = select_modules(probe, a.modules, a.last_k_blocks)
            self.module_names = list(modules)
        if a.projection == "outer" and a.method in BLOCK_METHODS:
            self._note(OUTER_ONE_BLOCK_NOTE.format(method=a.method, k=a.k))
        tied = tracked_tied_head(probe, modules)
        if tied is not None:  # the Attributor warns when it is built
            self._note(TIED_HEAD_NOTE.format(name=tied), warn=False)

    def _make_loss(self) -> PairLoss:
        a = self.args
        return make_loss(a.loss, a.max_length, a.max_prompt_length, a.beta, reward_fn=reward_at_last_token)

    def _load_policy(self, name: str):
        if self.args.loss == "reward":
            return load_reward_model(name, self.dtype)
        return load_causal_lm(name, self.dtype, base=self.args.reference)

    # ---------------------------------------------------------------------- run
    def _bar(self, desc: str, total: int):
        if not self.progress:
            return nullcontext(None)
        # disable=None: no bar when stderr is not a terminal (logs, CliRunner)
        return tqdm(total=total, desc=desc, unit="pair", dynamic_ncols=True, leave=False, disable=None)

    def _store(self, root: Path, kind: str, arguments: dict, rows: int, dim: int, shard_size: int) -> FeatureStore:
        return FeatureStore(root, {"kind": kind, **arguments}, rows, dim, shard_size)

    def _reference_logprobs(self, work: Path, pairs, data_id: dict, shard_size: int, all_ranks: bool) -> FeatureStore:
        arguments = {"reference": self.reference_fp, "encoding": self.pair_loss.describe(), "data": data_id}
        store = self._store(work, "reference_logprobs", arguments, len(pairs), 2, shard_size)
        shards = rank_shards(store.num_shards, self.topology) if all_ranks else None
        with self._bar("reference log-probs", len(pairs)) as bar:
            for shard in store.missing(shards):
                rows = store.shard_rows(shard)
                logps = reference_logprobs(self.reference, self.tokenizer, self.pair_loss,
                                           pairs[rows.start : rows.stop], self.args.batch_size,
                                           bar.update if bar else None)
                store.write_shard(shard, logps.numpy())
        return store

    def run(self, work: Path) -> list[StateFeatures]:
        a, topo = self.args, self.topology
        ref_train = None
        if self.reference is not None:
            with self.timer("reference log-probs"), topo.synchronized():
                store = self._reference_logprobs(work / "reference_logprobs" / "train", self.pairs, self.data_id,
                                                 a.shard_size, all_ranks=True)
            ref_train = torch.from_numpy(store.read_all()).to(torch.float64)
        if self.policy is None and not self.checkpoints:
            self._train_auto_policy(ref_train)
        elif self.checkpoints:
            self.policy_name = f"checkpoints: {a.checkpoints}"
        with self.timer("test pairs"), topo.synchronized():
            if self.test_side is None and topo.is_main:
                self.test_side = paper_test_pairs(
                    a.benchmarks, policy=self.policy, reference=self.reference, tokenizer=self.tokenizer,
                    eval_dir=work / "eval", limit=a.test_limit, seed=a.seed, max_new_tokens=a.max_new_tokens,
                    batch_size=a.batch_size)
                empty = [n for n, pairs in self.test_side.pairs.items() if not pairs]
                if empty:
                    raise DataError(f"--test-side paper: the policy and the reference generate the same text for "
                                    f"every prompt of {', '.join(empty)}; no pseudo pairs")
        dpo = a.loss == "dpo"
        ref_tests = self._test_reference_logprobs(work) if topo.is_main and dpo else {}
        ref_train = ref_train if dpo else None
        states = []
        for name, model, weight, adam in self._states():
            states.append(self._state_features(work / "features" / name, name, model, weight, adam, ref_train,
                                               ref_tests))
        return states if topo.is_main else []

    def _train_auto_policy(self, ref_train: torch.Tensor) -> None:
        from trustattr.attribution.default_policy import auto_policy

        a = self.args
        kwargs = dict(last_k_blocks=a.last_k_blocks, seed=a.seed, batch_size=a.batch_size)
        with self.timer("policy (LoRA-DPO)"), self.topology.synchronized():
            if self.topology.is_main:
                with self._bar("policy LoRA-DPO", len(self.pairs)) as bar:
                    auto_policy(a.reference, self.reference_fp, self.pairs, ref_train, self.tokenizer, self.pair_loss,
                                progress=bar.update if bar else None, **kwargs)
        path = auto_policy(a.reference, self.reference_fp, self.pairs, ref_train, self.tokenizer, self.pair_loss,
                           **kwargs)
        self.policy = load_causal_lm(str(path), self.dtype, base=a.reference)
        self.policy_name = f"auto: {a.reference} + LoRA-DPO ({path})"

    def _test_reference_logprobs(self, work: Path) -> dict[str, torch.Tensor]:
        out = {}
        with self.timer("reference log-probs"):
            for name, pairs in self.test_side.pairs.items():
                data_id = _data_identity(pairs, benchmark=name, test_side=self.args.test_side)
                store = self._reference_logprobs(work / "reference_logprobs" / f"test-{name}", pairs, data_id,
                                                 len(pairs), all_ranks=False)
                out[name] = torch.from_numpy(store.read_all()).to(torch.float64)
        return out

    def _states(self):
        """(name, model, weight, adam state or None) per model state to featurize.

        tracin/less sum over checkpoints weighted by their learning rate; every other method given checkpoints
        scores their ensemble, the mean over checkpoints (TRAK's ensemble over checkpoints).
        """
        if not self.checkpoints:
            yield "final", self.policy, 1.0, None
            return
        for ckpt in self.checkpoints:
            model = load_causal_lm(str(ckpt.model_path), self.dtype, base=self.args.reference)
            adam = load_adam_state(ckpt) if self.method.adam_train_features else None
            weight = ckpt.learning_rate if self.method.needs_checkpoints else 1.0 / len(self.checkpoints)
            yield ckpt.name, model, weight, adam

    def _projectors(self, modules, adam) -> tuple[Projector, Projector]:
        """(train projector, test projector)."""
        a = self.args
        if adam is None:
            projector = ExactGradients(modules) if a.projection == "exact" else Projector(modules, a.projection, a.k,
                                                                                           a.seed)
            return projector, projector
        state, hyper = adam
        # less: one global projection, as many features as the factored projection would give (capped per side)
        k = Projector(modules, "factored", a.k, a.seed).dim if a.projection == "factored" else a.k
        train = AdamProjector(modules, k, a.seed, state, tuple(hyper["betas"]), float(hyper["eps"]))
        return train, Projector(modules, "outer", k, a.seed)

    def _state_features(self, root: Path, name: str, model, weight: float, adam, ref_train, ref_tests) -> StateFeatures:
        a, topo = self.args, self.topology
        modules = select_modules(model, a.modules, a.last_k_blocks)
        self.module_names = list(modules)
        train_proj, test_proj = self._projectors(modules, adam)
        self.feature_dim = train_proj.dim
        self.state_names.append(name)
        common = {"model": fingerprint(model), "loss": self.loss.describe(),
                  "reference": getattr(self, "reference_fp", None)}
        attributor = Attributor(model, self.tokenizer, self.loss, modules, train_proj, a.batch_size)
        with self.timer("train features"), topo.synchronized():
            store = self._store(root / "train", "train_features", {**common, "projection": train_proj.describe(),
                                "data": self.data_id}, len(self.pairs), train_proj.dim, a.shard_size)
            mine = rank_shards(store.num_shards, topo)
            todo = sum(len(store.shard_rows(s)) for s in store.missing(mine))
            with self._bar(f"train features [{name}]", todo) as bar:
                attributor.fill_store(store, self.pairs, mine, ref_train, bar.update if bar else None)
        if not topo.is_main:
            return StateFeatures(name, weight, torch.zeros(0))
        features = StateFeatures(name, weight, torch.from_numpy(store.read_all()), blocks=train_proj.blocks)
        if self.method.name == "trak" and a.loss in ("dpo", "reward"):
            with self.timer("train residuals"):
                features.residual = self._residuals(root / "residuals", attributor, common, ref_train)
        if self.method.preconditions_queries:  # ekfac: test features are the projected H^-1 v_q
            with self.timer("ekfac factors"):
                test_proj = self._ekfac_projector(root / "ekfac", name, model, modules, test_proj, common, ref_train)
            if a.normalize:
                with self.timer("ekfac norms"):
                    features.train_norms = self._ekfac_norms(root / f"train-norms{test_proj.store_suffix}", model,
                                                             modules, test_proj, common, self.pairs, self.data_id,
                                                             ref_train, a.shard_size)
        test_attributor = Attributor(model, self.tokenizer, self.loss, modules, test_proj, a.batch_size)
        with self.timer("test features"):
            for bench, pairs in self.test_side.pairs.items():
                data_id = _data_identity(pairs, benchmark=bench, test_side=a.test_side)
                directory = root / f"test-{bench}{getattr(test_proj, 'store_suffix', '')}"  # ekfac: per damping
                store = self._store(directory, "test_features", {**common, "data": data_id,
                                    "projection": test_proj.describe()}, len(pairs), test_proj.dim, len(pairs))
                with self._bar(f"test features [{bench}]", len(pairs)) as bar:
                    test_attributor.fill_store(store, pairs, None, ref_tests.get(bench), bar.update if bar else None)
                features.tests[bench] = torch.from_numpy(store.read_all())
                if self.method.preconditions_queries and a.normalize:
                    features.test_norms[bench] = self._ekfac_norms(directory.with_name(directory.name + "-norms"),
                                                                   model, modules, test_proj, common, pairs, data_id,
                                                                   ref_tests.get(bench), len(pairs))
        return features

    def _ekfac_projector(self, root: Path, name: str, model, modules, projector: Projector, common: dict, ref_train):
        """EK-FAC factors of this model state over the train pairs (stored, resumable) -> the test-side projector."""
        from trustattr.attribution.ekfac import FactorStore, PreconditionedProjector, fit_factors
        from trustattr.attribution.methods import get_method

        a = self.args
        damping = get_method(a.method, a.damping).damping
        store = FactorStore(root, {**common, "data": self.data_id,
                                   "modules": [[m.name, m.d_in, m.d_out] for m in projector.layout]})

        def fit(covariance_path: Path):
            with self._bar(f"ekfac factors [{name}]", len(self.pairs)) as bar:
                return fit_factors(model, self.tokenizer, self.loss, modules, self.pairs, ref_train, a.batch_size,
                                   bar.update if bar else None, covariance_path=covariance_path)

        return PreconditionedProjector(projector, store.load_or_fit(list(modules), fit), damping, store.key)

    def _ekfac_norms(self, root: Path, model, modules, test_proj, common: dict, pairs, data_id: dict, reference,
                     shard_size: int) -> torch.Tensor:
        """``g^T H^-1 g`` of every pair (one more pass over them; stored like the features)."""
        from trustattr.attribution.ekfac import QuadraticForm

        form = QuadraticForm(modules, test_proj.factors, test_proj.damping)
        store = self._store(root, "ekfac_norms", {**common, "data": data_id, "projection": test_proj.describe()},
                            len(pairs), 1, shard_size)
        Attributor(model, self.tokenizer, self.loss, modules, form, self.args.batch_size).fill_store(
            store, pairs, None, reference)
        return torch.from_numpy(store.read_all())[:, 0].to(torch.float64)

    def _residuals(self, root: Path, attributor: Attributor, common: dict, ref_train) -> torch.Tensor:
        """``sigma(-f_i) = 1 - exp(-loss_i)`` of every train pair (a forward pass; stored like the features)."""
        store = self._store(root, "train_residuals", {**common, "data": self.data_id}, len(self.pairs), 1,
                            self.args.shard_size)
        for shard in store.missing():
            rows = store.shard_rows(shard)
            ref = None if ref_train is None else ref_train[rows.start : rows.stop]
            losses = attributor.pair_losses(self.pairs[rows.start : rows.stop], ref)  # [n]
            store.write_shard(shard, (-torch.expm1(-losses))[:, None].numpy())
        return torch.from_numpy(store.read_all())[:, 0].to(torch.float64)

    def ops_info(self) -> dict[str, object]:
        return kernels.info()
