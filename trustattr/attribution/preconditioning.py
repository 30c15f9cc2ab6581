"""AdamProjector (the less method): Adam-preconditioned per-pair gradients, globally projected.

LESS (Xia et al. 2024) scores with the Adam update a training example would cause, not its raw gradient:
``m = b1 m_prev + (1 - b1) G``, ``v = b2 v_prev + (1 - b2) G^2``, ``G' = m / sqrt(v + eps)`` with the optimizer's
moments ``m_prev``, ``v_prev`` at the checkpoint. The transform is elementwise, so each tracked module's
per-pair gradient ``G`` [d_out, d_in] is built explicitly (one module at a time, then freed), transformed, and
projected with the same global sketch as ``Projector(kind="outer")``: test features made by the plain outer
projector live in the same space.
"""

from __future__ import annotations

import re

import torch
from torch import nn

from trustattr.attribution import kernels
from trustattr.attribution.projector import Projector
from trustattr.errors import CheckpointError

__all__ = ["AdamProjector", "normalize_parameter_name"]


def normalize_parameter_name(name: str) -> str:
    """A parameter name without wrapper prefixes (PEFT's ``base_model.model.``, DDP's ``module.``)."""
    name = re.sub(r"^(module\.)+", "", name)
    return re.sub(r"^base_model\.model\.", "", name)


class AdamProjector(Projector):
    """``Projector(kind="outer")`` of Adam-preconditioned per-pair gradients."""

    def __init__(self, modules: dict[str, nn.Module], k: int, seed: int,
                 state: dict[str, tuple[torch.Tensor, torch.Tensor]], betas: tuple[float, float], eps: float) -> None:
        super().__init__(modules, "outer", k, seed)
        by_name = {normalize_parameter_name(name): moments for name, moments in state.items()}
        self.moments = []
        for name in modules:
            key = normalize_parameter_name(f"{name}.weight")
            if key not in by_name:
                raise CheckpointError(f"the optimizer state has no Adam moments for tracked weight '{key}'")
            self.moments.append(by_name[key])
        self.betas, self.eps = betas, eps

    def describe(self) -> dict[str, object]:
        return {**super().describe(), "preconditioner": "adam", "betas": list(self.betas), "eps": self.eps}

    def sink(self, index: int, a: torch.Tensor, g: torch.Tensor) -> None:
        assert self._out is not None and self._mask is not None, "AdamProjector.sink called outside start/finish"
        m = self.layout[index]
        acc = self._out.dtype
        a = self.masked_input(index, a).to(acc)  # [R, T, d_in], pads -> 0
        grads = torch.bmm(g.to(acc).transpose(1, 2), a).flatten(1)  # [R, d_out*d_in]
        if self._segments is not None:
            grads = kernels.segment_sum(grads, self._segments, self._num)  # [S, d_out*d_in]
        exp_avg, exp_avg_sq = (t.to(acc).flatten() for t in self.moments[index])
        b1, b2 = self.betas
        update = (b1 * exp_avg + (1 - b1) * grads) / torch.sqrt(b2 * exp_avg_sq + (1 - b2) * grads.square() + self.eps)
        self._out += kernels.project(update, self.k, m.seed, feature_offset=m.feature_offset)
