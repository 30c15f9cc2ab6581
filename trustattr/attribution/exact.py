"""ExactGradients: the unprojected per-pair gradients of the tracked modules, as a drop-in Projector.

Features are ``[vec(G_1), vec(G_2), ...]`` with ``G_l = sum_t g_t a_t^T`` [d_out, d_in] the pair's gradient of
module l (row-major, the order of ``weight``), one block per module. Used where the dimension allows: the
LDS benchmark compares every method on projected features against the same method on these, so the loss due
to the projection is measured, and the float64 tests use them as the gradients every projection must sketch.
"""

from __future__ import annotations

import torch
from torch import nn

from trustattr.attribution import kernels
from trustattr.attribution.projector import ModuleLayout, Projector

__all__ = ["ExactGradients"]


class ExactGradients(Projector):
    """Per-pair flattened layer gradients [pairs, sum_l d_out d_in] (float64 for a float64 model)."""

    def __init__(self, modules: dict[str, nn.Module]) -> None:
        self.kind, self.k, self.seed = "exact", 0, 0
        self.layout = []
        column = 0
        for name, module in modules.items():
            self.layout.append(ModuleLayout(name, module.in_features, module.out_features, 0, column, 0))
            column += module.in_features * module.out_features
        self.dim = column
        self._out = self._mask = self._segments = None
        self._num = 0

    @property
    def blocks(self) -> list[int]:
        return [m.column for m in self.layout] + [self.dim]

    def describe(self) -> dict[str, object]:
        return {"kind": "exact", "dim": self.dim, "modules": [[m.name, m.d_in, m.d_out] for m in self.layout]}

    def sink(self, index: int, a: torch.Tensor, g: torch.Tensor) -> None:
        assert self._out is not None and self._mask is not None, "ExactGradients.sink called outside start/finish"
        m = self.layout[index]
        acc = self._out.dtype
        a = self.masked_input(index, a).to(acc)  # [R, T, d_in], pads -> 0
        grads = torch.bmm(g.to(acc).transpose(1, 2), a).flatten(1)  # [R, d_out * d_in]
        if self._segments is not None:
            grads = kernels.segment_sum(grads, self._segments, self._num)  # [P, d_out * d_in]
        self._out[:, m.column : m.column + m.d_out * m.d_in] += grads

    def columns(self, index: int) -> slice:
        m = self.layout[index]
        return slice(m.column, m.column + m.d_out * m.d_in)

    def project_matrices(self, index: int, h: torch.Tensor) -> torch.Tensor:
        """The flattened matrices [Q, d_out * d_in] (row-major, as the captured gradients)."""
        return h.flatten(1)
