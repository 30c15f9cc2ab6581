"""Projector: per-module captured (a, g) -> projected per-example (or per-pair) gradient features, via the ops.

Two layouts (``kind``):
    ``factored``  module l gets its own column block of ``k_out * k_in`` features, each side capped at the
                  module's own dimension (``k_in = min(k, d_in)``, ``k_out = min(k, d_out)``),
                  ``project_factored(a, g, k_in, k_out, derive_seed(seed, l))`` = vec(R_out^T G_l R_in) (LoGra
                  style); the blocks are the per-layer blocks DataInf inverts separately. A side with ``k >= d``
                  (e.g. the rank side of a LoRA factor: lora_A is [r, d_in], lora_B [d_out, r]) is kept exact
                  (R = identity) instead of projected: more than d features on that side would only repeat
                  information (G_l has rank <= d), and a square d x d random sign matrix is singular about half the
                  time for d = 4..8, which would lose some of it.
    ``outer``     all modules share ``k`` columns: ``project_outer(a, g, k, seed, feature_offset=offset_l)``,
                  i.e. one global random projection of the concatenated flattened gradients [G_1, G_2, ...].
Padding tokens contribute nothing: ``a`` is zeroed where the token mask is 0 (``g`` is zero there already).
No I/O; the features of one batch are collected in :meth:`Projector.start` ... :meth:`Projector.finish`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from trustattr.attribution import kernels
from trustattr.attribution.capture import CaptureError

__all__ = ["ModuleLayout", "Projector"]


@dataclass(frozen=True)
class ModuleLayout:
    """Where one tracked module's features go."""

    name: str
    d_in: int
    d_out: int
    seed: int  # factored: the module's own seed; outer: the global seed
    column: int  # first feature column (factored) or 0 (outer)
    feature_offset: int  # outer: index of the module's first entry in the concatenated gradient
    k_in: int = 0  # factored: input-side sketch size, min(k, d_in) (= d_in: that side is exact)
    k_out: int = 0  # factored: output-side sketch size, min(k, d_out) (= d_out: that side is exact)

    @property
    def width(self) -> int:
        """Number of feature columns of a factored block."""
        return self.k_out * self.k_in


class Projector:
    """Sketches captured per-row layer gradients into a [pairs, dim] feature matrix."""

    def __init__(self, modules: dict[str, nn.Module], kind: str = "factored", k: int = 16, seed: int = 0) -> None:
        if kind not in ("factored", "outer"):
            raise ValueError(f"`kind` must be 'factored' or 'outer', got {kind!r}")
        if k < 1:
            raise ValueError(f"`k` must be >= 1, got {k}")
        self.kind, self.k, self.seed = kind, k, seed
        self.layout: list[ModuleLayout] = []
        column = offset = 0
        for index, (name, module) in enumerate(modules.items()):
            d_in, d_out = module.in_features, module.out_features
            if kind == "factored":
                self.layout.append(ModuleLayout(name, d_in, d_out, kernels.derive_seed(seed, index), column, 0,
                                                min(k, d_in), min(k, d_out)))
                column += self.layout[-1].width
            else:
                self.layout.append(ModuleLayout(name, d_in, d_out, seed, 0, offset))
                offset += d_in * d_out
        self.dim = column if kind == "factored" else k
        self._out: torch.Tensor | None = None
        self._mask: torch.Tensor | None = None
        self._segments: torch.Tensor | None = None
        self._num: int = 0

    @property
    def blocks(self) -> list[int]:
        """Column boundaries of the per-module blocks ([0, k] for the single global block of ``outer``)."""
        if self.kind == "outer":
            return [0, self.k]
        return [m.column for m in self.layout] + [self.dim]

    def describe(self) -> dict[str, object]:
        """What determines the features (stored with them)."""
        if self.kind == "outer":
            return {"kind": self.kind, "k": self.k, "seed": self.seed, "dim": self.dim,
                    "modules": [[m.name, m.d_in, m.d_out] for m in self.layout]}
        return {"kind": self.kind, "k": self.k, "seed": self.seed, "dim": self.dim,
                "per_side": "min(k, d); a side with k >= d is exact",
                "modules": [[m.name, m.d_in, m.d_out, m.k_in, m.k_out] for m in self.layout]}

    def start(self, token_mask: torch.Tensor, segments: torch.Tensor | None, num_segments: int,
              dtype: torch.dtype) -> None:
        """Begin a batch: ``token_mask`` [R, T], rows summed into ``num_segments`` outputs by ``segments`` [R]."""
        self._mask = token_mask
        self._segments = segments
        self._num = num_segments
        self._op_segments = {} if segments is None else {"segments": segments, "num_segments": num_segments}
        out_dtype = torch.float64 if dtype == torch.float64 else torch.float32
        self._out = torch.zeros(num_segments, self.dim, dtype=out_dtype)

    def masked_input(self, index: int, a: torch.Tensor) -> torch.Tensor:
        """``a`` [R, T, d_in] with padding positions zeroed by the batch's [R, T] token mask."""
        assert self._mask is not None, "Projector used outside start/finish"
        if a.shape[:2] != self._mask.shape:
            raise CaptureError(
                f"tracked module '{self.layout[index].name}' ran on {tuple(a.shape[:2])} positions but the batch's "
                f"token mask is {tuple(self._mask.shape)}: every tracked module must see all [rows, tokens] positions"
            )
        return a * self._mask[..., None].to(a.dtype)

    def sink(self, index: int, a: torch.Tensor, g: torch.Tensor) -> None:
        """Capture callback: project module ``index``'s (a [R,T,d_in], g [R,T,d_out]) into the batch features."""
        assert self._out is not None and self._mask is not None, "Projector.sink called outside start/finish"
        m = self.layout[index]
        a = self.masked_input(index, a)  # [R, T, d_in], pads -> 0
        a, g = a.contiguous(), g.contiguous()
        if self.kind == "factored":
            if m.k_in < m.d_in and m.k_out < m.d_out:
                feats = kernels.project_factored(a, g, m.k_in, m.k_out, m.seed, **self._op_segments)
            else:
                feats = self._partly_exact(m, a, g, self._out.dtype)
                if self._segments is not None:
                    feats = kernels.segment_sum(feats, self._segments, self._num)
            self._out[:, m.column : m.column + m.width] += feats
        else:
            self._out += kernels.project_outer(a, g, self.k, m.seed, m.feature_offset, **self._op_segments)

    @staticmethod
    def _partly_exact(m: ModuleLayout, a: torch.Tensor, g: torch.Tensor, acc: torch.dtype) -> torch.Tensor:
        """vec(R_out^T G R_in) with R = identity on a side with k >= d: the same R as ``project_factored`` on a
        projected side (``project`` with ``derive_seed(seed, 0)`` for inputs, ``derive_seed(seed, 1)`` for
        outputs) -> [rows, k_out * k_in] in ``acc``."""
        rows, tokens = a.shape[:2]
        with torch.no_grad():
            if m.k_in < m.d_in:
                a = kernels.project(a.reshape(-1, m.d_in), m.k_in, kernels.derive_seed(m.seed, 0))
            if m.k_out < m.d_out:
                g = kernels.project(g.reshape(-1, m.d_out), m.k_out, kernels.derive_seed(m.seed, 1))
            a = a.to(acc).reshape(rows, tokens, m.k_in)
            g = g.to(acc).reshape(rows, tokens, m.k_out)
            return torch.bmm(g.transpose(1, 2), a).flatten(1)  # [R, k_out * k_in]

    def finish(self) -> torch.Tensor:
        """The batch's features [num_segments, dim]."""
        assert self._out is not None, "Projector.finish called before start"
        out, self._out, self._mask, self._segments = self._out, None, None, None
        return out

    def columns(self, index: int) -> slice:
        """The feature columns module ``index`` contributes to (all ``k`` of them for ``outer``)."""
        if self.kind == "outer":
            return slice(0, self.k)
        m = self.layout[index]
        return slice(m.column, m.column + m.width)

    def project_matrices(self, index: int, h: torch.Tensor) -> torch.Tensor:
        """Module ``index``'s sketch of explicit matrices ``h`` [Q, d_out, d_in] -> [Q, len(columns(index))].

        The same sketch a captured gradient ``G = sum_t g_t a_t^T`` gets, by the same ops: ``h`` is fed as
        ``d_in`` "tokens" with ``a_t = e_t`` and ``g_t = h[:, t]`` (so ``sum_t g_t a_t^T = h``): factored
        ``R_out^T h R_in``, outer the global projection of ``vec(h)`` at the module's offset.
        """
        m = self.layout[index]
        out = []
        chunk = max(1, (1 << 22) // (m.d_in * m.d_in))  # queries per call: bounds the identity's size
        for start in range(0, h.shape[0], chunk):
            part = h[start : start + chunk]
            eye = torch.eye(m.d_in, dtype=part.dtype).expand(part.shape[0], m.d_in, m.d_in).contiguous()
            g = part.transpose(1, 2).contiguous()  # [q, d_in, d_out]
            if self.kind == "factored" and m.k_in < m.d_in and m.k_out < m.d_out:
                out.append(kernels.project_factored(eye, g, m.k_in, m.k_out, m.seed))
            elif self.kind == "factored":  # a side kept exact (k >= d), as in sink
                out.append(self._partly_exact(m, eye, g, part.dtype))
            else:
                out.append(kernels.project_outer(eye, g, self.k, m.seed, m.feature_offset))
        if not out:
            cols = self.columns(index)
            return torch.zeros(0, cols.stop - cols.start, dtype=h.dtype)
        return torch.cat(out)
