"""Oracles of score, topk_score and datainf_scores, in float64 (train read a block of rows at a time)."""

from __future__ import annotations

import math

import torch

from trustattr.reference.projection import _FLOATS, _check_input


def _check_scoring(train: torch.Tensor, query: torch.Tensor, op: str, query_layout: str = "[M, k]") -> None:
    _check_input(train, op, "train", "[N, k]")
    want = 1 if query_layout == "[k]" else 2
    if query.dim() != want:
        raise ValueError(f"{op}: argument 'query' must be a {want}-D tensor {query_layout}, got a {query.dim()}-D "
                         f"tensor of shape {list(query.shape)}")
    if train.device != query.device:
        raise ValueError(f"{op}: arguments 'train' and 'query' must be on the same device, got {train.device} "
                         f"and {query.device}")
    if query.dtype not in _FLOATS:
        raise TypeError(f"{op}: argument 'query' must be float32, float64, bfloat16 or float16, got {query.dtype}")
    if train.shape[1] < 1:
        raise ValueError(f"{op}: argument 'train' must have k >= 1 columns, got shape {list(train.shape)}")
    if query.shape[-1] != train.shape[1]:
        raise ValueError(f"{op}: argument 'query' must have the same number of columns k as 'train' "
                         f"({train.shape[1]}), got shape {list(query.shape)} vs {list(train.shape)}")


def _score_dtype(train: torch.Tensor, query: torch.Tensor) -> torch.dtype:
    return torch.float64 if torch.float64 in (train.dtype, query.dtype) else torch.float32


def _cosine(dots: torch.Tensor, train_sq: torch.Tensor, query_sq: torch.Tensor) -> torch.Tensor:
    """dots [n, M] / (sqrt(train_sq) [n, 1] sqrt(query_sq) [1, M]); 0 where either norm is 0."""
    denom = train_sq.sqrt()[:, None] * query_sq.sqrt()[None, :]
    return torch.where(denom == 0, torch.zeros_like(dots), dots / torch.where(denom == 0, 1.0, denom))


def _scores64(train: torch.Tensor, query: torch.Tensor, normalize: bool) -> torch.Tensor:
    """float64 [N, M] scores, reading train a block of rows at a time (memory-mapped files stay mapped)."""
    q = query.double()
    q_sq = (q * q).sum(1)
    blocks = []
    for start in range(0, train.shape[0], 1 << 16):
        t = train[start:start + (1 << 16)].double()
        dots = t @ q.T
        blocks.append(_cosine(dots, (t * t).sum(1), q_sq) if normalize else dots)
    return torch.cat(blocks) if blocks else torch.zeros(0, query.shape[0], dtype=torch.float64)


def score(train: torch.Tensor, query: torch.Tensor, normalize: bool = False) -> torch.Tensor:
    """train [N, k] @ query [M, k]^T -> [N, M]; cosine similarity (0 for zero rows) when ``normalize``."""
    _check_scoring(train, query, "score")
    return _scores64(train, query, normalize).to(_score_dtype(train, query))


def topk_score(train: torch.Tensor, query: torch.Tensor, topk: int, normalize: bool = False,
               largest: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Per query, the ``topk`` best train rows: (values [M, topk], indices [M, topk]), best first.

    Order: larger score first (smaller if not ``largest``), NaN above every number (as torch.sort),
    ties broken by the smaller row index.
    """
    _check_scoring(train, query, "topk_score")
    if topk < 1:
        raise ValueError(f"topk_score: argument 'topk' must be >= 1, got {topk}")
    if topk > train.shape[0]:
        raise ValueError(f"topk_score: argument 'topk' must be <= N, the number of train rows ({train.shape[0]}), "
                         f"got {topk}")
    scores = _scores64(train, query, normalize).to(_score_dtype(train, query)).T  # [M, N]
    values, indices = torch.sort(scores, dim=1, descending=largest, stable=True)
    return values[:, :topk].contiguous(), indices[:, :topk].contiguous()


def _datainf_blocks(train: torch.Tensor, query: torch.Tensor, damping: float | None,
                    blocks: list[int] | None) -> list[tuple[int, int, float]]:
    """Checked (lo, hi, lambda) of every block; lambda = 0.1 * mean squared entry by default."""
    op = "datainf_scores"
    _check_scoring(train, query, op, "[k]")
    n, k = train.shape
    if n < 1:
        raise ValueError(f"{op}: argument 'train' must have N >= 1 rows, got shape {list(train.shape)}")
    if damping is not None and not (math.isfinite(damping) and damping > 0):
        raise ValueError(f"{op}: argument 'damping' must be a finite number > 0 (or None for the per-block "
                         f"default), got {damping}")
    bounds = [0, k] if blocks is None else list(blocks)
    if len(bounds) < 2 or bounds[0] != 0 or bounds[-1] != k:
        raise ValueError(f"{op}: argument 'blocks' must be column boundaries [0, ..., k] starting at 0 and "
                         f"ending at k = {k}, got {bounds}")
    if any(b <= a for a, b in zip(bounds, bounds[1:])):
        raise ValueError(f"{op}: argument 'blocks' must be strictly increasing, got {bounds}")
    out = []
    for lo, hi in zip(bounds, bounds[1:]):
        lam = damping if damping is not None else 0.1 * float(train[:, lo:hi].double().square().mean())
        out.append((lo, hi, lam))
    return out


def datainf_scores(train: torch.Tensor, query: torch.Tensor, damping: float | None = None,
                   blocks: list[int] | None = None) -> torch.Tensor:
    """DataInf influence of every train row on the query (paper.md 4.1) -> [N].

    Per block l (columns [blocks[l], blocks[l+1])): c_il = <v_l, g_il> / (lambda_l + ||g_il||^2),
    h_l = (1/(n lambda_l)) sum_i (v_l - c_il g_il), score_k = -sum_l <h_l, g_kl>. A block whose
    lambda is 0 (all gradients 0) contributes 0.
    """
    parts = _datainf_blocks(train, query, damping, blocks)
    g, v, n = train.double(), query.double(), train.shape[0]
    out = torch.zeros(n, dtype=torch.float64)
    for lo, hi, lam in parts:
        if lam == 0:
            continue
        gl, vl = g[:, lo:hi], v[lo:hi]
        coef = (gl @ vl) / (lam + gl.square().sum(1))  # [n]
        h = (n * vl - coef @ gl) / (n * lam)
        out -= gl @ h
    return out.to(_score_dtype(train, query))


def datainf_scores_bruteforce(train: torch.Tensor, query: torch.Tensor, damping: float | None = None,
                              blocks: list[int] | None = None) -> torch.Tensor:
    """DataInf by definition, float64: h_l = ((1/n) sum_i (g_il g_il^T + lambda_l I)^-1) v_l, inverted
    explicitly (small k only), score_k = -sum_l <h_l, g_kl>."""
    parts = _datainf_blocks(train, query, damping, blocks)
    g, v, n = train.double(), query.double(), train.shape[0]
    out = torch.zeros(n, dtype=torch.float64)
    for lo, hi, lam in parts:
        gl = g[:, lo:hi]
        eye = torch.eye(hi - lo, dtype=torch.float64)
        inverse = torch.stack([torch.linalg.inv(gi[:, None] * gi[None, :] + lam * eye) for gi in gl]).mean(0)
        out -= gl @ (inverse @ v[lo:hi])
    return out
