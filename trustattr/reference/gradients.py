"""Oracles of the gradient sketches of a linear layer (project_factored, project_outer) and of
segment_sum, in float64: G_n = sum_t g[n,t] a[n,t]^T is formed (a block of rows at a time)."""

from __future__ import annotations

import torch

from trustattr.reference.projection import (
    _FEATURE_CHUNK,
    _FLOATS,
    _check,
    _check_input,
    _out_dtype,
    random_matrix,
)
from trustattr.reference.rng import derive_seed


def _check_factors(a: torch.Tensor, g: torch.Tensor, op: str) -> None:
    for name, t, layout in (("a", a, "[N, T, d_in]"), ("g", g, "[N, T, d_out]")):
        if t.dim() != 3:
            raise ValueError(f"{op}: argument '{name}' must be a 3-D tensor {layout}, got a {t.dim()}-D tensor "
                             f"of shape {list(t.shape)}")
    if a.device != g.device:
        raise ValueError(f"{op}: arguments 'a' and 'g' must be on the same device, got {a.device} and {g.device}")
    for name, t in (("a", a), ("g", g)):
        if t.dtype not in _FLOATS:
            raise TypeError(f"{op}: argument '{name}' must be float32, float64, bfloat16 or float16, got {t.dtype}")
    if a.dtype != g.dtype:
        raise TypeError(f"{op}: arguments 'a' and 'g' must have the same dtype, got {a.dtype} and {g.dtype}")
    for dim, what in ((0, "number of rows N"), (1, "number of tokens T")):
        if a.shape[dim] != g.shape[dim]:
            raise ValueError(f"{op}: argument 'g' must have the same {what} as 'a' ({a.shape[dim]}), got shape "
                             f"{list(g.shape)} vs {list(a.shape)}")
    for name, t, what in (("a", a, "d_in"), ("g", g, "d_out")):
        if t.shape[2] < 1:
            raise ValueError(f"{op}: argument '{name}' must have {what} >= 1 features, got shape {list(t.shape)}")


def _rows_out(segments: torch.Tensor | None, num_segments: int, rows: int, op: str) -> int:
    if segments is None:
        if num_segments != -1:
            raise ValueError(f"{op}: argument 'num_segments' must be None when 'segments' is None, got {num_segments}")
        return rows
    if segments.dtype != torch.int64:
        raise TypeError(f"{op}: argument 'segments' must be an int64 tensor, got {segments.dtype}")
    if segments.shape != (rows,):
        raise ValueError(f"{op}: argument 'segments' must have shape [{rows}] (one id per row), "
                         f"got shape {list(segments.shape)}")
    if num_segments < 1:
        raise ValueError(f"{op}: argument 'num_segments' must be >= 1 when 'segments' is given, got {num_segments}")
    bad = (segments < 0) | (segments >= num_segments)
    if bool(bad.any()):
        r = int(bad.nonzero()[0, 0])
        raise ValueError(f"{op}: argument 'segments' values must lie in [0, num_segments) = [0, {num_segments}), "
                         f"got {int(segments[r])} at row {r}")
    return num_segments


def _sum_segments(x: torch.Tensor, segments: torch.Tensor | None, rows_out: int) -> torch.Tensor:
    if segments is None:
        return x
    return torch.zeros(rows_out, x.shape[1], dtype=x.dtype, device=x.device).index_add_(0, segments, x)


def segment_sum(x: torch.Tensor, segments: torch.Tensor, num_segments: int) -> torch.Tensor:
    """out[s] = sum of the rows r of x [R, k] with segments[r] == s -> [num_segments, k]."""
    _check_input(x, "segment_sum", "x", "[R, k]")
    if x.shape[1] < 1:
        raise ValueError(f"segment_sum: argument 'x' must have k >= 1 columns, got shape {list(x.shape)}")
    if num_segments < 1:
        raise ValueError(f"segment_sum: argument 'num_segments' must be >= 1, got {num_segments}")
    _rows_out(segments, num_segments, x.shape[0], "segment_sum")
    return _sum_segments(x.double(), segments, num_segments).to(_out_dtype(x.dtype))


def project_factored(a: torch.Tensor, g: torch.Tensor, k_in: int, k_out: int, seed: int,
                     segments: torch.Tensor | None = None, num_segments: int = -1) -> torch.Tensor:
    """out[n, o*k_in + i] = sum_t (R_out^T g[n,t])[o] (R_in^T a[n,t])[i]  -> [N or S, k_out*k_in].

    R_in = random_matrix(d_in, k_in, derive_seed(seed, 0)), R_out = random_matrix(d_out, k_out,
    derive_seed(seed, 1)), both rademacher; equal to R_out^T G_n R_in flattened row-major.
    """
    _check_factors(a, g, "project_factored")
    for name, value in (("k_in", k_in), ("k_out", k_out)):
        if value < 1:
            raise ValueError(f"project_factored: argument '{name}' must be >= 1, got {value}")
    rows = _rows_out(segments, num_segments, a.shape[0], "project_factored")
    r_in = random_matrix(a.shape[2], k_in, derive_seed(seed, 0), dtype=torch.float64, device=a.device)
    r_out = random_matrix(g.shape[2], k_out, derive_seed(seed, 1), dtype=torch.float64, device=a.device)
    pa, pg = a.double() @ r_in, g.double() @ r_out  # [N, T, k_in], [N, T, k_out]
    out = torch.einsum("nto,nti->noi", pg, pa).reshape(a.shape[0], k_out * k_in)
    return _sum_segments(out, segments, rows).to(_out_dtype(a.dtype))


def project_outer(a: torch.Tensor, g: torch.Tensor, k: int, seed: int, feature_offset: int = 0,
                  segments: torch.Tensor | None = None, num_segments: int = -1) -> torch.Tensor:
    """project(G.flatten(1), k, seed, feature_offset=...) with G[n] = sum_t g[n,t] a[n,t]^T [d_out, d_in].

    G is formed a block of rows at a time (so the fallback's memory stays bounded), in float64.
    """
    _check_factors(a, g, "project_outer")
    _check("rademacher", 1, k, feature_offset, 1, "project_outer")
    rows = _rows_out(segments, num_segments, a.shape[0], "project_outer")
    d_in, d_out = a.shape[2], g.shape[2]
    step = max(1, _FEATURE_CHUNK // d_in)
    out = torch.zeros(a.shape[0], k, dtype=torch.float64, device=a.device)
    for o0 in range(0, d_out, step):
        o1 = min(d_out, o0 + step)
        block = torch.einsum("nto,nti->noi", g[..., o0:o1].double(), a.double()).reshape(a.shape[0], -1)
        out += block @ random_matrix((o1 - o0) * d_in, k, seed, "rademacher", feature_offset + o0 * d_in,
                                     dtype=torch.float64, device=a.device)
    return _sum_segments(out, segments, rows).to(_out_dtype(a.dtype))
