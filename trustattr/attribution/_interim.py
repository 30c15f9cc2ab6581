"""Interim pure-PyTorch versions of the ops of INTERFACES.md C that the compiled extension does not offer yet.

:mod:`trustattr.attribution.kernels` binds each name to the compiled op as soon as :mod:`trustattr.ops`
exposes it; these versions only keep the engine usable until then. They follow the contract exactly
(random matrices from :func:`trustattr.ops.random_matrix`, fp32 accumulation, float64 for float64 input).
"""

from __future__ import annotations

import torch

from trustattr import ops

_MASK64 = (1 << 64) - 1


def derive_seed(seed: int, index: int) -> int:
    """A well-mixed int63 seed for sub-stream ``index`` of ``seed`` (splitmix64 of both)."""
    z = ((seed & _MASK64) * 0x9E3779B97F4A7C15 + (index & _MASK64) + 0x632BE59BD9B4E019) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return (z ^ (z >> 31)) & ((1 << 63) - 1)


def _acc(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def _segments(out: torch.Tensor, segments: torch.Tensor | None, num_segments: int | None) -> torch.Tensor:
    if segments is None:
        return out
    return segment_sum(out, segments, int(num_segments if num_segments is not None else segments.max() + 1))


def project_factored(a, g, k_in, k_out, seed, segments=None, num_segments=None):
    """out[n, o*k_in + i] = sum_t (R_out^T g[n,t])[o] (R_in^T a[n,t])[i] -> [N|S, k_out*k_in]."""
    dtype = _acc(a.dtype)
    r_in = ops.random_matrix(a.shape[-1], k_in, derive_seed(seed, 0), dtype=dtype)  # [d_in, k_in]
    r_out = ops.random_matrix(g.shape[-1], k_out, derive_seed(seed, 1), dtype=dtype)  # [d_out, k_out]
    pa = a.to(dtype) @ r_in  # [N, T, k_in]
    pg = g.to(dtype) @ r_out  # [N, T, k_out]
    out = torch.bmm(pg.transpose(1, 2), pa).flatten(1)  # [N, k_out*k_in]
    return _segments(out, segments, num_segments)


def project_outer(a, g, k, seed, feature_offset=0, segments=None, num_segments=None):
    """project(G.flatten(1), k, seed, feature_offset) with G[n] = sum_t g[n,t] a[n,t]^T -> [N|S, k]."""
    dtype = _acc(a.dtype)
    grads = torch.bmm(g.to(dtype).transpose(1, 2), a.to(dtype)).flatten(1)  # [N, d_out*d_in]
    out = ops.project(grads, k, seed, feature_offset=feature_offset)
    return _segments(out, segments, num_segments)


def segment_sum(x, segments, num_segments):
    out = torch.zeros(num_segments, x.shape[1], dtype=_acc(x.dtype), device=x.device)
    return out.index_add_(0, segments.to(torch.int64), x.to(out.dtype))


def _normalized(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=1, keepdim=True).clamp_min(torch.finfo(x.dtype).tiny)


def score(train, query, normalize=False):
    dtype = _acc(train.dtype)
    train, query = train.to(dtype), query.to(dtype)
    if normalize:
        train, query = _normalized(train), _normalized(query)
    return train @ query.T


def topk_score(train, query, topk, normalize=False, largest=True):
    values, indices = score(train, query, normalize).T.topk(topk, dim=1, largest=largest)
    return values, indices


def datainf_scores(train, query, damping=None, blocks=None):
    """-sum_l <hvp_l, g_kl>, hvp_l = 1/(n lam_l) sum_i (v_l - <v_l,g_il>/(lam_l + |g_il|^2) g_il) -> [N]."""
    dtype = _acc(train.dtype)
    train, query = train.to(dtype), query.to(dtype)
    bounds = list(blocks) if blocks is not None else [0, train.shape[1]]
    if bounds[0] != 0:
        bounds = [0, *bounds]
    n = train.shape[0]
    out = torch.zeros(n, dtype=dtype)
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        g, v = train[:, lo:hi], query[lo:hi]  # [N, d_l], [d_l]
        lam = damping if damping is not None else 0.1 * float((g * g).mean())
        if lam == 0.0:
            continue  # an all-zero block carries no influence
        coef = (g @ v) / (lam + (g * g).sum(1))  # [N]
        hvp = (n * v - coef @ g) / (n * lam)  # [d_l]
        out -= g @ hvp
    return out
