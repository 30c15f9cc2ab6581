"""Attribution methods: per-pair train features and per-query test features -> a score matrix [N, Q].

Sign convention (all methods, the paper's, §4.1): a raw score is the estimated change of the query's loss
when the training pair is up-weighted. Negative = the pair LOWERED the query loss, i.e. pushed the model
toward the query pair's ``chosen`` side (for the ``target`` test side: toward the trustworthy answer).

Every method is an inner product in a metric ``M`` (a symmetric positive semi-definite map on feature space,
fitted on the train features): ``raw[i, q] = -g_i^T M v_q``. With ``normalize`` the scores are cosines in
that metric, ``raw[i, q] / (sqrt(g_i^T M g_i) sqrt(v_q^T M v_q))``, so gradient-norm dominance is a choice.

    gradient_dot     M = I
    gradient_cosine  M = I, normalized
    tracin           M = I, summed over saved checkpoints weighted by their learning rate (Pruthi et al. 2020)
    less             M = I, normalized, train features Adam-preconditioned, over checkpoints (Xia et al. 2024)
    datainf          DataInf (Kwon et al. 2024), per block l: M_l = mean_j (lam_l I + g_jl g_jl^T)^-1
                     = (I - mean_j g_jl g_jl^T / (lam_l + |g_jl|^2)) / lam_l, lam_l = damping x mean g_l^2
                     (the paper's 0.1 by default)
    datainf_exact    the exact damped block inverse DataInf approximates: M_l = (G_l^T G_l / N + lam_l I)^-1,
                     lam_l = damping x the block's mean non-zero eigenvalue (default 1.0, by LDS)
    whitened_cosine  datainf_exact's metric, normalized: cosine of the whitened gradients (F + lam)^-1/2 g
                     (TrackStar-style, Chang et al. 2024)
    trak             TRAK (Park et al. 2023): M = (Phi^T Phi / N + lam I)^-1 with Phi the output-function
                     gradients (for DPO/reward: the margin's, Phi_i = -g_i / r_i with r_i = sigma(-f_i) = 1 - p_i,
                     TRAK's Q), lam = damping x mean non-zero eigenvalue (default 1.0), solved in the N x N dual;
                     the train side stays the loss gradient g_i = -r_i Phi_i (Q applied on the train side only).
                     Ensembles: several feature sets (checkpoints, independently trained models), averaged.
    ekfac            EK-FAC influence (Grosse et al. 2023, as Kronfluence): M = the damped inverse of the
                     eigenvalue-corrected Kronecker-factored curvature of each tracked module, applied to the query's
                     full gradient BEFORE projection (trustattr.attribution.ekfac), so its FeatureSet.test is already
                     M v_q (``preconditions_queries``) and the score is the plain dot product; damping relative,
                     lam_l = damping x mean(Lambda_l) (default 0.1, Kronfluence's heuristic).

A method scores a list of :class:`FeatureSet` (one per model state): the score matrix is their weighted sum.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from trustattr.attribution import kernels
from trustattr.attribution.curvature import DampedInverse

__all__ = ["METHOD_REGISTRY", "FeatureSet", "Method", "get_method", "sign_normalize"]

METHOD_REGISTRY: dict[str, type[Method]] = {}

# Relative damping of the exact damped inverses (datainf_exact, whitened_cosine, trak): lambda = 1.0 x the mean
# non-zero eigenvalue. Chosen by `trustattr lds --preset tiny --damping 0.001,0.01,0.1,1` (seeds 0 and 1,
# benchmarks/RESULTS.md section 7): 1.0 ranked best for all three on both seeds; Kronfluence's 0.1 heuristic
# was 0.04-0.10 LDS lower. On the smol workload more damping (10-100) ranked better still: the right value is
# workload-dependent, which is why `trustattr lds --damping` sweeps it.
DAMPING_OF_EXACT_INVERSES = 1.0

Metric = Callable[[torch.Tensor], torch.Tensor]  # rows [Q, D] -> M applied to each row [Q, D] float64


@dataclass(frozen=True)
class FeatureSet:
    """Features of one model state, with the weight of its scores in the method's sum.

    ``train`` [N, D] per-pair loss gradients; ``test`` [Q, D] per-query gradients (of the query's loss);
    ``blocks`` column boundaries [0, b1, ..., D] of per-layer blocks (empty = one block);
    ``train_residual`` [N] ``-dL/df`` of each train pair's loss w.r.t. its output function (``sigma(-f)``
    for DPO/reward; None when the loss has none, e.g. sft): TRAK's Q.
    ``train_norms`` [N] / ``test_norms`` [Q]: ``g_i^T M g_i`` / ``v_q^T M v_q`` computed where ``M`` was applied
    (ekfac, whose M acts on the full gradients before projection); only its ``normalize`` reads them.
    """

    train: torch.Tensor
    test: torch.Tensor
    weight: float = 1.0
    blocks: list[int] = field(default_factory=list)
    train_residual: torch.Tensor | None = None
    train_norms: torch.Tensor | None = None
    test_norms: torch.Tensor | None = None

    def block_slices(self) -> list[slice]:
        bounds = self.blocks or [0, self.train.shape[1]]
        return [slice(lo, hi) for lo, hi in zip(bounds[:-1], bounds[1:], strict=True) if hi > lo]


class Method(ABC):
    """One attribution method; subclasses register themselves under ``name``."""

    name: str = ""
    needs_checkpoints: bool = False  # scores sum over saved checkpoints (weighted by their learning rate)
    adam_train_features: bool = False  # train features must be Adam-preconditioned (less)
    always_normalized: bool = False  # a cosine method: normalize regardless of the argument
    default_damping: float | None = None  # relative damping used when none is given (methods with a metric)
    preconditions_queries: bool = False  # FeatureSet.test arrives already preconditioned (M v_q): metric is None

    def __init_subclass__(cls, name: str = "", **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        cls.name = name
        METHOD_REGISTRY[name] = cls

    def __init__(self, damping: float | None = None, normalize: bool = False) -> None:
        if damping is not None and not damping > 0:
            raise ValueError(f"`damping` must be > 0 or unset, got {damping}")
        self.damping = damping if damping is not None else self.default_damping
        self.normalize = normalize or self.always_normalized

    def describe(self) -> dict[str, object]:
        return {"method": self.name, "damping": self.damping, "normalize": self.normalize}

    def score_matrix(self, sets: list[FeatureSet]) -> torch.Tensor:
        """Raw scores [N, Q] (float64): the weighted sum over feature sets of :meth:`set_matrix`."""
        if not sets:
            raise ValueError(f"{self.name}: no feature sets to score")
        total = torch.zeros(sets[0].train.shape[0], sets[0].test.shape[0], dtype=torch.float64)
        for fs in sets:
            total += fs.weight * self.set_matrix(fs)
        return total

    def scores(self, sets: list[FeatureSet]) -> torch.Tensor:
        """Raw scores [N] (float64): the mean over queries of :meth:`score_matrix`."""
        return self.score_matrix(sets).mean(1)

    def set_matrix(self, fs: FeatureSet) -> torch.Tensor:
        """Raw scores [N, Q] of one feature set: ``-g_i^T M v_q`` (cosines in M when normalized)."""
        if fs.train.shape[1] != fs.test.shape[1]:
            raise ValueError(f"{self.name}: train features have {fs.train.shape[1]} columns, test features "
                             f"{fs.test.shape[1]}")
        metric = self.metric(fs)
        if metric is None:  # M = I: the compiled scoring op streams over train
            return -kernels.score(fs.train, fs.test.to(torch.float64), normalize=self.normalize)
        mv = metric(fs.test)  # [Q, D]
        raw = -kernels.score(fs.train, mv.contiguous())  # [N, Q]
        if not self.normalize:
            return raw
        train_norm = _quadratic_norms(fs.train, metric)  # [N]
        test_norm = (fs.test.to(torch.float64) * mv).sum(1).clamp_min(0).sqrt()  # [Q]
        denominator = train_norm[:, None] * test_norm[None, :]
        return torch.where(denominator > 0, raw / denominator.clamp_min(1e-300), torch.zeros_like(raw))

    @abstractmethod
    def metric(self, fs: FeatureSet) -> Metric | None:
        """The map ``M`` fitted on ``fs.train`` (None = identity)."""


def _quadratic_norms(train: torch.Tensor, metric: Metric, chunk: int = 4096) -> torch.Tensor:
    """``sqrt(g_i^T M g_i)`` for every train row -> [N], in chunks of rows."""
    out = torch.empty(train.shape[0], dtype=torch.float64)
    for start in range(0, train.shape[0], chunk):
        g = train[start : start + chunk].to(torch.float64)
        out[start : start + chunk] = (g * metric(g)).sum(1).clamp_min(0).sqrt()
    return out


def _block_metric(fs: FeatureSet, make: Callable[[torch.Tensor], Metric]) -> Metric:
    """One metric per feature block, applied block by block."""
    slices = fs.block_slices()
    per_block = [make(fs.train[:, s]) for s in slices]

    def apply(v: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(v.shape, dtype=torch.float64)
        for s, m in zip(slices, per_block, strict=True):
            out[:, s] = m(v[:, s])
        return out

    return apply


class GradientDot(Method, name="gradient_dot"):
    def metric(self, fs):
        return None


class GradientCosine(GradientDot, name="gradient_cosine"):
    always_normalized = True


class TracIn(GradientDot, name="tracin"):
    needs_checkpoints = True


class LESS(GradientCosine, name="less"):
    needs_checkpoints = True
    adam_train_features = True


class DataInf(Method, name="datainf"):
    default_damping = 0.1

    def metric(self, fs):
        return _block_metric(fs, lambda g: _datainf_block(g, self.damping))


def _datainf_block(grads: torch.Tensor, damping: float) -> Metric:
    """DataInf's ``mean_j (lam I + g_j g_j^T)^-1`` for one block, ``lam = damping x mean g^2``."""
    g = grads.to(torch.float64)  # [N, D]
    lam = damping * float(g.square().mean()) if g.numel() else 0.0
    if lam == 0.0:
        return torch.zeros_like
    weights = 1.0 / (lam + g.square().sum(1))  # [N]
    n = g.shape[0]

    def apply(v: torch.Tensor) -> torch.Tensor:
        v = v.to(torch.float64)
        return (v - ((g @ v.T) * weights[:, None]).T @ g / n) / lam

    return apply


class DataInfExact(Method, name="datainf_exact"):
    default_damping = DAMPING_OF_EXACT_INVERSES

    def metric(self, fs):
        return _block_metric(fs, lambda g: DampedInverse(g, self.damping))


class WhitenedCosine(DataInfExact, name="whitened_cosine"):
    always_normalized = True


class TRAK(Method, name="trak"):
    default_damping = DAMPING_OF_EXACT_INVERSES

    def metric(self, fs):
        phi = fs.train.to(torch.float64)  # [N, D]
        if fs.train_residual is not None:
            residual = fs.train_residual.to(torch.float64)  # [N]
            if not bool((residual > 0).all()):
                raise ValueError("trak: train residuals sigma(-f) must be > 0 (a saturated pair has no gradient)")
            phi = phi / residual[:, None]  # output-function gradients (sign irrelevant in Phi^T Phi)
        return DampedInverse(phi, self.damping)


class EKFAC(Method, name="ekfac"):
    """Scores ``-g_i . (H^-1 v_q)``: the workflow gives it test features already multiplied by the EK-FAC inverse.

    With ``normalize`` the scores are cosines in ``H^-1``: divided by ``sqrt(g_i^T H^-1 g_i)`` and
    ``sqrt(v_q^T H^-1 v_q)``, which the feature set must carry (``train_norms``, ``test_norms``): ``H^-1`` acts on
    the full gradients, so they cannot be recovered from projected features.
    """

    default_damping = 0.1
    preconditions_queries = True

    def metric(self, fs):
        return None

    def set_matrix(self, fs: FeatureSet) -> torch.Tensor:
        if fs.train.shape[1] != fs.test.shape[1]:
            raise ValueError(f"{self.name}: train features have {fs.train.shape[1]} columns, test features "
                             f"{fs.test.shape[1]}")
        raw = -kernels.score(fs.train, fs.test.to(torch.float64))  # [N, Q]
        if not self.normalize:
            return raw
        if fs.train_norms is None or fs.test_norms is None:
            raise ValueError("ekfac with `normalize` needs g^T H^-1 g of every train pair and query "
                             "(FeatureSet.train_norms, test_norms; trustattr.attribution.ekfac.QuadraticForm)")
        train_norm = fs.train_norms.to(torch.float64).clamp_min(0).sqrt()
        test_norm = fs.test_norms.to(torch.float64).clamp_min(0).sqrt()
        denominator = train_norm[:, None] * test_norm[None, :]
        return torch.where(denominator > 0, raw / denominator.clamp_min(1e-300), torch.zeros_like(raw))


def get_method(name: str, damping: float | None = None, normalize: bool = False) -> Method:
    if name not in METHOD_REGISTRY:
        raise ValueError(f"`method` must be one of {', '.join(METHOD_REGISTRY)}; got {name!r}")
    return METHOD_REGISTRY[name](damping, normalize)


def sign_normalize(scores: torch.Tensor) -> torch.Tensor:
    """The paper's normalisation (§4.6): positives / max positive, negatives / |min negative| -> [-1, 1]."""
    scores = scores.to(torch.float64)
    out = torch.zeros_like(scores)
    pos, neg = scores > 0, scores < 0
    if pos.any():
        out[pos] = scores[pos] / scores[pos].max()
    if neg.any():
        out[neg] = scores[neg] / scores[neg].min().abs()
    return out
