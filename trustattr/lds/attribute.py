"""Features of one trained model for the LDS: per-pair DPO-loss gradients of the training pairs, per-query
gradients of ``-beta x margin`` (the measured quantity), and the training pairs' ``sigma(-beta m)`` (TRAK's Q),
either projected by the engine's factored projector or exact (unprojected, float64).
"""

from __future__ import annotations

import torch
from torch import nn

from trustattr.attribution.attributor import Attributor
from trustattr.attribution.ekfac import EKFACFactors, PreconditionedProjector, fit_factors
from trustattr.attribution.exact import ExactGradients
from trustattr.attribution.losses import DPOLoss, MarginLoss
from trustattr.attribution.methods import FeatureSet
from trustattr.attribution.modules import select_modules
from trustattr.attribution.projector import Projector
from trustattr.lds.retrain import EncodedPairs, measure_margins
from trustattr.lds.workload import Workload

__all__ = ["ekfac_factors", "ekfac_set", "feature_dims", "model_features"]


def _projector(modules: dict[str, nn.Module], kind: str, k: int, seed: int) -> Projector:
    return ExactGradients(modules) if kind == "exact" else Projector(modules, kind, k, seed)


def feature_dims(workload: Workload, k: int) -> dict[str, int]:
    """Feature dimension per kind ('factored', 'exact') for the workload's tracked modules."""
    modules = select_modules(workload.start, workload.modules, workload.last_k_blocks)
    return {kind: _projector(modules, kind, k, 0).dim for kind in ("factored", "exact")}


def _losses(workload: Workload) -> tuple[DPOLoss, MarginLoss]:
    enc = {"max_length": workload.max_length, "max_prompt_length": workload.max_prompt_length}
    return DPOLoss(beta=workload.recipe.beta, **enc), MarginLoss(beta=workload.recipe.beta, **enc)


def model_features(workload: Workload, model: nn.Module, train: EncodedPairs, queries: EncodedPairs, kind: str,
                   k: int, seed: int, weight: float = 1.0, batch_size: int = 16) -> FeatureSet:
    """The FeatureSet of ``model`` (train: DPO loss gradients; test: gradients of -beta x margin)."""
    r = workload.recipe
    modules = select_modules(model, workload.modules, workload.last_k_blocks)
    projector = _projector(modules, kind, k, seed)
    train_loss, query_loss = _losses(workload)
    grads = Attributor(model, workload.tokenizer, train_loss, modules, projector, batch_size)
    train_feats = grads.features(workload.train_pairs, train.reference)  # [N, dim]
    test = Attributor(model, workload.tokenizer, query_loss, modules, projector, batch_size)
    test_feats = test.features(workload.queries, queries.reference)  # [Q, dim]
    residual = torch.sigmoid(-r.beta * measure_margins(model, train))  # [N] sigma(-beta m_i)
    return FeatureSet(train_feats, test_feats, weight, projector.blocks, residual)


def ekfac_factors(workload: Workload, model: nn.Module, train: EncodedPairs, batch_size: int = 16) -> EKFACFactors:
    """EK-FAC factors of the tracked modules of ``model`` over the training pairs (DPO loss gradients)."""
    modules = select_modules(model, workload.modules, workload.last_k_blocks)
    return fit_factors(model, workload.tokenizer, _losses(workload)[0], modules, workload.train_pairs,
                       train.reference, batch_size)


def ekfac_set(workload: Workload, model: nn.Module, plain: FeatureSet, queries: EncodedPairs, factors: EKFACFactors,
              kind: str, k: int, seed: int, damping: float, batch_size: int = 16) -> FeatureSet:
    """``plain`` with its test features replaced by the projected EK-FAC IHVP of each query's gradient."""
    modules = select_modules(model, workload.modules, workload.last_k_blocks)
    projector = PreconditionedProjector(_projector(modules, kind, k, seed), factors, damping)
    test = Attributor(model, workload.tokenizer, _losses(workload)[1], modules, projector, batch_size)
    return FeatureSet(plain.train, test.features(workload.queries, queries.reference), plain.weight, plain.blocks,
                      plain.train_residual)
