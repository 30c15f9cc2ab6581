"""Attribution methods: projected train/test features -> one raw score per training pair.

Sign convention (all methods, the paper's, §4.1): a raw score is the estimated change of the test loss when
the training pair is up-weighted. Negative = the pair LOWERED the test loss, i.e. pushed the model toward the
test pair's ``chosen`` side (for the ``target`` test side: toward the trustworthy answer).

    datainf          -sum_l <hvp_l, g_kl>, DataInf's layer-wise Sherman-Morrison inverse (ops.datainf_scores)
    gradient_dot     -<g_k, v>                      v = mean test gradient
    gradient_cosine  -mean_j cos(g_k, t_j)
    tracin           -sum_c lr_c <g_k^c, v^c>       over saved checkpoints c
    trak             -<g_k, (PhiᵀPhi/N + lam I)^-1 v>  exact damped Gauss-Newton inverse on the features
    less             -sum_c lr_c mean_j cos(Adam(g_k^c), t_j^c)  (train features Adam-preconditioned)

A method scores a list of :class:`FeatureSet` (one per checkpoint; one in total for the single-model methods).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import torch

from trustattr.attribution import kernels

__all__ = ["METHOD_REGISTRY", "FeatureSet", "Method", "get_method", "sign_normalize"]

METHOD_REGISTRY: dict[str, type[Method]] = {}


@dataclass(frozen=True)
class FeatureSet:
    """Features of one model state: train [N, k], test [M, k] for one benchmark, and its weight (learning rate)."""

    train: torch.Tensor
    test: torch.Tensor
    weight: float = 1.0
    blocks: list[int] = field(default_factory=list)


class Method(ABC):
    """One attribution method; subclasses register themselves under ``name``."""

    name: str = ""
    needs_checkpoints: bool = False  # scores sum over saved checkpoints (weighted by their learning rate)
    adam_train_features: bool = False  # train features must be Adam-preconditioned (less)

    def __init_subclass__(cls, name: str = "", **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        cls.name = name
        METHOD_REGISTRY[name] = cls

    def __init__(self, damping: float | None = None) -> None:
        self.damping = damping

    def scores(self, sets: list[FeatureSet]) -> torch.Tensor:
        """Raw scores [N] (float64): the weighted sum over feature sets of :meth:`score_set`."""
        if not sets:
            raise ValueError(f"{self.name}: no feature sets to score")
        total = torch.zeros(sets[0].train.shape[0], dtype=torch.float64)
        for fs in sets:
            total += fs.weight * self.score_set(fs).to(torch.float64)
        return total

    @abstractmethod
    def score_set(self, fs: FeatureSet) -> torch.Tensor:
        """Raw scores [N] of one feature set."""


class DataInf(Method, name="datainf"):
    def score_set(self, fs):
        return kernels.datainf_scores(fs.train, fs.test.mean(0), self.damping, fs.blocks or None)


class GradientDot(Method, name="gradient_dot"):
    def score_set(self, fs):
        return -kernels.score(fs.train, fs.test.mean(0, keepdim=True))[:, 0]


class GradientCosine(Method, name="gradient_cosine"):
    def score_set(self, fs):
        return -kernels.score(fs.train, fs.test, normalize=True).mean(1)


class TracIn(GradientDot, name="tracin"):
    needs_checkpoints = True


class TRAK(Method, name="trak"):
    def score_set(self, fs):
        train = fs.train.to(torch.float64)  # [N, k]
        n = train.shape[0]
        gram = kernels.score(train.T.contiguous(), train.T.contiguous()) / n  # [k, k] = PhiᵀPhi / N
        lam = self.damping if self.damping is not None else 0.1 * float(gram.diagonal().mean())
        lam = lam if lam > 0 else 1.0
        kernel = gram + lam * torch.eye(gram.shape[0], dtype=gram.dtype)
        v = torch.linalg.solve(kernel, fs.test.to(torch.float64).mean(0))  # [k]
        return -kernels.score(train, v[None])[:, 0]


class LESS(GradientCosine, name="less"):
    needs_checkpoints = True
    adam_train_features = True


def get_method(name: str, damping: float | None = None) -> Method:
    if name not in METHOD_REGISTRY:
        raise ValueError(f"`method` must be one of {', '.join(METHOD_REGISTRY)}; got {name!r}")
    return METHOD_REGISTRY[name](damping)


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
