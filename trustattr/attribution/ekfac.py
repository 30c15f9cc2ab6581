"""EK-FAC influence (Grosse et al. 2023, as Kronfluence computes it): factors, their store, the query-side IHVP.

For every tracked linear module l (weight ``W_l`` [d_out, d_in], bias not attributed), fitted on the training pairs:

    A_l = E_tokens[a a^T]  [d_in, d_in]     layer inputs of the non-padding tokens
    S_l = E_tokens[g g^T]  [d_out, d_out]   output gradients of the same tokens
    A_l = Q_A diag(.) Q_A^T,  S_l = Q_S diag(.) Q_S^T     eigenbases (float64)
    Lambda_l[i, j] = mean over pairs p of ((Q_S^T G_p Q_A)[i, j])^2     the eigenvalue correction

with ``G_p = sum_t g_t a_t^T`` the pair's gradient of the module (summed over its rows and tokens, as
:class:`~trustattr.attribution.exact.ExactGradients` computes it). The curvature of module l is
``H_l = (Q_S x Q_A) diag(vec Lambda_l) (Q_S x Q_A)^T`` and its damped inverse applied to a matrix V is

    IHVP_l(V) = Q_S ((Q_S^T V Q_A) / (Lambda_l + lam_l)) Q_A^T,   lam_l = damping x mean(Lambda_l)

(``damping`` relative, 0.1 by default: Kronfluence's heuristic, per module). Modules are independent
(block-diagonal), so influence is ``-sum_l <G_il, IHVP_l(V_ql)>``. Padding is handled as Kronfluence does with an
attention mask: padding tokens are left out of both covariances and of the token count that averages them.

The gradients ``g`` are those of the per-pair training loss on the pair's own responses (the backward of the
sum of per-pair losses, as :class:`~trustattr.attribution.attributor.Attributor` takes it): an *empirical*
Fisher. Kronfluence by default samples the labels from the model (``sample=True`` in its task's training loss)
to estimate the true Fisher, the Gauss-Newton Hessian of a log-likelihood. A DPO (or reward) pair has no
model-sampled counterpart of its label: the label is which of the two given responses is preferred, and the
loss is not the log-likelihood of generating them; so the curvature here is the second moment of the gradients
the training run actually followed, with the given chosen/rejected responses.

Fitting costs one forward/backward pass over the training pairs when their per-pair gradients fit in
``cache_bytes`` (they are kept in memory to compute Lambda after the eigendecomposition), else two (the
second recomputes the per-pair gradients). Factors are stored under a directory named by the hash of their
arguments (``arguments.json``, ``covariance.npz`` after the first pass, ``factors.npz`` at the end; npz
without pickles, written atomically), so a rerun with the same arguments loads them and one with other
arguments fits its own.

On the query side, :class:`PreconditionedProjector` captures each query's full per-module gradient, applies the
IHVP and projects the result with the train features' projector, so that ``train feature . test feature``
sketches ``g_i^T H^-1 v_q`` (exactly so for :class:`ExactGradients`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from transformers import PreTrainedTokenizerBase

from trustattr.attribution import kernels
from trustattr.attribution.attributor import Attributor
from trustattr.attribution.exact import ExactGradients
from trustattr.attribution.losses import PairLoss
from trustattr.attribution.projector import Projector
from trustattr.attribution.store import write_json
from trustattr.errors import CheckpointError
from trustattr.paths import atomic_path

__all__ = ["EKFACFactors", "FactorStore", "ModuleFactors", "PreconditionedProjector", "QuadraticForm", "fit_factors"]

Progress = Callable[[int], None]
DEFAULT_CACHE_BYTES = 1 << 30


@dataclass(frozen=True)
class ModuleFactors:
    """EK-FAC factors of one module (float64)."""

    name: str
    q_a: torch.Tensor  # [d_in, d_in] eigenvectors of A (columns)
    q_s: torch.Tensor  # [d_out, d_out] eigenvectors of S
    eigenvalue_correction: torch.Tensor  # [d_out, d_in] Lambda

    def damping_value(self, damping: float) -> float:
        """``lam = damping x mean(Lambda)`` (0 for a module whose training gradients are all zero)."""
        return damping * float(self.eigenvalue_correction.mean())

    def ihvp(self, v: torch.Tensor, damping: float) -> torch.Tensor:
        """``IHVP(V)`` for matrices ``v`` [Q, d_out, d_in] -> [Q, d_out, d_in] float64.

        A module whose training gradients are all zero (Lambda = 0) gives the zero map: it carries no
        information about the training pairs, so it scores nothing.
        """
        v = v.to(torch.float64)
        lam = self.damping_value(damping)
        if lam == 0.0:
            return torch.zeros_like(v)
        rotated = self.q_s.T @ v @ self.q_a  # [Q, d_out, d_in]
        return self.q_s @ (rotated / (self.eigenvalue_correction + lam)) @ self.q_a.T


@dataclass(frozen=True)
class EKFACFactors:
    """Factors of every tracked module, in the projector's module order."""

    modules: list[ModuleFactors]
    num_pairs: int
    num_tokens: int

    def save(self, path: Path) -> None:
        arrays: dict[str, np.ndarray] = {"num_pairs": np.array(self.num_pairs), "num_tokens": np.array(self.num_tokens)}
        for i, m in enumerate(self.modules):
            arrays[f"q_a_{i}"] = m.q_a.numpy()
            arrays[f"q_s_{i}"] = m.q_s.numpy()
            arrays[f"lambda_{i}"] = m.eigenvalue_correction.numpy()
        _write_npz(path, arrays)

    @classmethod
    def load(cls, path: Path, names: Sequence[str]) -> EKFACFactors:
        arrays = _read_npz(path)
        try:
            modules = [ModuleFactors(name, torch.from_numpy(arrays[f"q_a_{i}"]), torch.from_numpy(arrays[f"q_s_{i}"]),
                                     torch.from_numpy(arrays[f"lambda_{i}"])) for i, name in enumerate(names)]
            return cls(modules, int(arrays["num_pairs"]), int(arrays["num_tokens"]))
        except KeyError as exc:
            raise CheckpointError(f"EK-FAC factors '{path}' lack {exc}") from exc


def _write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, **arrays)


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as data:
            return {key: data[key] for key in data.files}
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"EK-FAC factors '{path}' cannot be read: {exc}") from exc


# ------------------------------------------------------------------------------------------------ capture sinks
def _masked_input(a: torch.Tensor, mask: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor:
    """``a`` [R, T, d_in] with padding tokens zeroed, in ``dtype``."""
    if mask is not None:
        a = a * mask[..., None].to(a.dtype)
    return a.to(dtype)


class _CovarianceSink(ExactGradients):
    """First pass: token covariances A, S of every module (over non-padding tokens); optionally the per-pair
    gradients (as ExactGradients features, so the Attributor puts them in pair order)."""

    def __init__(self, modules: dict[str, nn.Module], keep_gradients: bool) -> None:
        super().__init__(modules)
        self.keep_gradients = keep_gradients
        self.a_cov = [torch.zeros(m.d_in, m.d_in, dtype=torch.float64) for m in self.layout]
        self.s_cov = [torch.zeros(m.d_out, m.d_out, dtype=torch.float64) for m in self.layout]
        self.num_tokens = 0
        self._seen_inputs: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}

    @property
    def dim(self) -> int:  # features returned per pair: the flattened gradients, or nothing
        return self._dim if self.keep_gradients else 0

    @dim.setter
    def dim(self, value: int) -> None:
        self._dim = value

    def start(self, token_mask, segments, num_segments, dtype) -> None:
        super().start(token_mask, segments, num_segments, dtype)
        self._acc = torch.float64 if dtype == torch.float64 else torch.float32
        self._tokens = token_mask.to(torch.bool)  # [R, T]
        self.num_tokens += int(self._tokens.sum())
        self._seen_inputs = {}

    def sink(self, index: int, a: torch.Tensor, g: torch.Tensor) -> None:
        tokens = self._tokens[:, : a.shape[1]]
        # modules reading the same input (q/k/v, gate/up) share one covariance product per batch
        key = (a.data_ptr(), tuple(a.shape), tuple(a.stride()), a.dtype)
        seen = self._seen_inputs.get(key)
        if seen is None:
            rows = a[tokens].to(self._acc)  # [M, d_in] non-padding tokens
            seen = (a, (rows.T @ rows).to(torch.float64))  # keeps a alive: its address stays its own this batch
            self._seen_inputs[key] = seen
        self.a_cov[index] += seen[1]
        grads = g[tokens].to(self._acc)  # [M, d_out]
        self.s_cov[index] += (grads.T @ grads).to(torch.float64)
        if self.keep_gradients:
            super().sink(index, a, g)

    def finish(self) -> torch.Tensor:
        out = super().finish()
        self._seen_inputs = {}
        return out if self.keep_gradients else out[:, :0]


class _LambdaSink(ExactGradients):
    """Second pass (when the per-pair gradients were not kept): Lambda accumulated batch by batch."""

    def __init__(self, modules: dict[str, nn.Module], bases: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        super().__init__(modules)
        self.bases = bases
        self.sums = [torch.zeros(m.d_out, m.d_in, dtype=torch.float64) for m in self.layout]
        self._dim = 0

    @property
    def dim(self) -> int:
        return 0

    @dim.setter
    def dim(self, value: int) -> None:
        self._dim = value

    def start(self, token_mask, segments, num_segments, dtype) -> None:
        self._mask, self._segments, self._num = token_mask, segments, num_segments
        self._dtype = torch.float64 if dtype == torch.float64 else torch.float32
        self._out = torch.zeros(num_segments, 0, dtype=self._dtype)

    def sink(self, index: int, a: torch.Tensor, g: torch.Tensor) -> None:
        grads = _pair_gradients(a, g, self._mask, self._segments, self._num, self._dtype)  # [P, d_out, d_in]
        q_a, q_s = self.bases[index]
        self.sums[index] += (q_s.T @ grads.to(torch.float64) @ q_a).square().sum(0)


def _pair_gradients(a: torch.Tensor, g: torch.Tensor, mask: torch.Tensor | None, segments: torch.Tensor | None,
                    num: int, dtype: torch.dtype) -> torch.Tensor:
    """Per-pair gradients ``sum_t g_t a_t^T`` [P, d_out, d_in] of captured rows (padding excluded)."""
    a = _masked_input(a, None if mask is None else mask[:, : a.shape[1]], dtype)
    grads = torch.bmm(g.to(dtype).transpose(1, 2), a)  # [R, d_out, d_in]
    if segments is not None:
        shape = grads.shape[1:]
        grads = kernels.segment_sum(grads.flatten(1), segments, num).view(num, *shape)
    return grads


def _eigenbasis(matrix: torch.Tensor) -> torch.Tensor:
    """Eigenvectors (columns, ascending eigenvalues) of a symmetric matrix, float64."""
    matrix = matrix.to(torch.float64)
    return torch.linalg.eigh((matrix + matrix.T) / 2).eigenvectors


def fit_factors(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    loss: PairLoss,
    modules: dict[str, nn.Module],
    pairs: Sequence,
    reference: torch.Tensor | None = None,
    batch_size: int = 8,
    progress: Progress | None = None,
    cache_bytes: int = DEFAULT_CACHE_BYTES,
    covariance_path: Path | None = None,
) -> EKFACFactors:
    """EK-FAC factors of ``modules`` over ``pairs`` (see the module docstring).

    ``reference`` [N, 2]: the reference log-probs (dpo). ``covariance_path``: where the first pass's result is
    saved (and loaded from, if it exists), so an interrupted second pass does not repeat the first.
    """
    if not pairs:
        raise ValueError("EK-FAC factors need at least one training pair (`pairs` is empty)")
    names = list(modules)
    layout = ExactGradients(modules).layout
    itemsize = 8 if next(model.parameters()).dtype == torch.float64 else 4
    keep = len(pairs) * sum(m.d_in * m.d_out for m in layout) * itemsize <= cache_bytes
    covariance = _read_npz(covariance_path) if covariance_path is not None and covariance_path.exists() else None
    pair_grads = None
    if covariance is None:
        sink = _CovarianceSink(modules, keep_gradients=keep)
        grads = Attributor(model, tokenizer, loss, modules, sink, batch_size).features(pairs, reference, progress)
        if sink.num_tokens == 0:
            raise ValueError("EK-FAC factors: the training pairs have no tokens")
        covariance = {"num_tokens": np.array(sink.num_tokens)}
        for i in range(len(layout)):
            covariance[f"a_{i}"] = (sink.a_cov[i] / sink.num_tokens).numpy()
            covariance[f"s_{i}"] = (sink.s_cov[i] / sink.num_tokens).numpy()
        if covariance_path is not None:
            _write_npz(covariance_path, covariance)
        pair_grads = grads if keep else None
    known: dict[bytes, torch.Tensor] = {}  # modules reading one input (q/k/v, gate/up) have one A: decompose once

    def basis(matrix: np.ndarray) -> torch.Tensor:
        key = hashlib.sha1(np.ascontiguousarray(matrix).tobytes()).digest() + bytes(str(matrix.shape), "ascii")
        if key not in known:
            known[key] = _eigenbasis(torch.from_numpy(matrix))
        return known[key]

    bases = [(basis(covariance[f"a_{i}"]), basis(covariance[f"s_{i}"])) for i in range(len(layout))]
    if pair_grads is not None:
        sums = []
        for m, (q_a, q_s) in zip(layout, bases, strict=True):
            block = pair_grads[:, m.column : m.column + m.d_out * m.d_in].view(-1, m.d_out, m.d_in)
            total = torch.zeros(m.d_out, m.d_in, dtype=torch.float64)
            for start in range(0, block.shape[0], 256):
                total += (q_s.T @ block[start : start + 256].to(torch.float64) @ q_a).square().sum(0)
            sums.append(total)
    else:
        sink = _LambdaSink(modules, bases)
        Attributor(model, tokenizer, loss, modules, sink, batch_size).features(pairs, reference, progress)
        sums = sink.sums
    factors = [ModuleFactors(name, q_a, q_s, total / len(pairs))
               for name, (q_a, q_s), total in zip(names, bases, sums, strict=True)]
    return EKFACFactors(factors, len(pairs), int(covariance["num_tokens"]))


class FactorStore:
    """EK-FAC factors on disk, keyed by their arguments: ``root/<sha1 of arguments>/``."""

    def __init__(self, root: str | Path, arguments: dict[str, Any]) -> None:
        self.arguments = json.loads(json.dumps(arguments, sort_keys=True))
        self.key = hashlib.sha1(json.dumps(self.arguments, sort_keys=True).encode()).hexdigest()[:16]
        self.dir = Path(root) / self.key
        self.factors_path = self.dir / "factors.npz"
        self.covariance_path = self.dir / "covariance.npz"

    def complete(self) -> bool:
        return self.factors_path.exists()

    def load_or_fit(self, names: Sequence[str], fit: Callable[[Path], EKFACFactors]) -> EKFACFactors:
        """The stored factors, or ``fit(covariance_path)`` saved first."""
        if self.complete():
            return EKFACFactors.load(self.factors_path, names)
        self.dir.mkdir(parents=True, exist_ok=True)
        write_json(self.dir / "arguments.json", self.arguments)
        factors = fit(self.covariance_path)
        factors.save(self.factors_path)
        return factors


# ------------------------------------------------------------------------------------------------- query side
class QuadraticForm(ExactGradients):
    """``g^T H^-1 g = sum_l <G_l, IHVP_l(G_l)>`` of every pair, as [P, 1] features (ekfac's ``normalize``)."""

    def __init__(self, modules: dict[str, nn.Module], factors: EKFACFactors, damping: float) -> None:
        super().__init__(modules)
        if len(factors.modules) != len(self.layout):
            raise ValueError(f"EK-FAC factors cover {len(factors.modules)} modules, not {len(self.layout)}")
        self.factors, self.damping = factors, damping
        self.dim = 1

    def start(self, token_mask, segments, num_segments, dtype) -> None:
        self._mask, self._segments, self._num = token_mask, segments, num_segments
        self._dtype = torch.float64 if dtype == torch.float64 else torch.float32
        self._out = torch.zeros(num_segments, 1, dtype=torch.float64)

    def sink(self, index: int, a: torch.Tensor, g: torch.Tensor) -> None:
        assert self._out is not None, "QuadraticForm.sink called outside start/finish"
        grads = _pair_gradients(a, g, self._mask, self._segments, self._num, self._dtype).to(torch.float64)
        self._out[:, 0] += (grads * self.factors.modules[index].ihvp(grads, self.damping)).sum((1, 2))


class PreconditionedProjector:
    """The test-side projector of ekfac: ``projector.project_matrices(IHVP(G_q))`` of every query's gradient.

    Drop-in for :class:`Projector` in an :class:`Attributor` (start / sink / finish, ``dim``, ``describe``).
    """

    def __init__(self, projector: Projector, factors: EKFACFactors, damping: float, factors_key: str = "") -> None:
        if len(factors.modules) != len(projector.layout):
            raise ValueError(f"EK-FAC factors cover {len(factors.modules)} modules, the projector "
                             f"{len(projector.layout)}")
        if not damping > 0:
            raise ValueError(f"`damping` must be > 0, got {damping}")
        self.projector, self.factors, self.damping, self.factors_key = projector, factors, damping, factors_key
        self.dim = projector.dim
        self._out: torch.Tensor | None = None

    @property
    def blocks(self) -> list[int]:
        return self.projector.blocks

    def describe(self) -> dict[str, object]:
        return {**self.projector.describe(), "preconditioner": {"method": "ekfac", "damping": self.damping,
                                                                "factors": self.factors_key}}

    @property
    def store_suffix(self) -> str:
        """Suffix of the test feature stores' directory: one per (factors, damping), so another ``--damping``
        recomputes only the queries' features, next to the others, instead of clashing with them."""
        tag = json.dumps({"damping": self.damping, "factors": self.factors_key}, sort_keys=True)
        return f"-ekfac-{hashlib.sha1(tag.encode()).hexdigest()[:12]}"

    def start(self, token_mask, segments, num_segments, dtype) -> None:
        self._mask, self._segments, self._num = token_mask, segments, num_segments
        self._dtype = torch.float64 if dtype == torch.float64 else torch.float32
        self._out = torch.zeros(num_segments, self.dim, dtype=torch.float64)

    def sink(self, index: int, a: torch.Tensor, g: torch.Tensor) -> None:
        assert self._out is not None, "PreconditionedProjector.sink called outside start/finish"
        grads = _pair_gradients(a, g, self._mask, self._segments, self._num, self._dtype)  # [Q, d_out, d_in]
        h = self.factors.modules[index].ihvp(grads, self.damping)
        self._out[:, self.projector.columns(index)] += self.projector.project_matrices(index, h)

    def finish(self) -> torch.Tensor:
        assert self._out is not None, "PreconditionedProjector.finish called before start"
        out, self._out = self._out, None
        return out
