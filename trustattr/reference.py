"""Pure-PyTorch oracles for every compiled op.

They re-implement the counter-based generator of ``csrc/sketch_rng.h`` with
int64 tensor arithmetic (wrapping multiplies, masked logical shifts), so
:func:`random_matrix` here equals the compiled ``random_matrix`` bit for bit.
Tests compare every kernel against these functions in float64; when the
compiled extension cannot be loaded, :mod:`trustattr.ops` serves these
functions as the ops' implementations instead.

The matrix generation is chunked over features, so the fallback never holds
more than ``_FEATURE_CHUNK x k`` entries of R at a time.
"""

from __future__ import annotations

import math

import torch

__all__ = [
    "KINDS",
    "datainf_scores",
    "datainf_scores_bruteforce",
    "derive_seed",
    "gaussian_table",
    "project",
    "project_factored",
    "project_outer",
    "project_t",
    "random_matrix",
    "row_keys",
    "score",
    "seed_key",
    "segment_sum",
    "topk_score",
]

KINDS = ("rademacher", "gaussian", "sjlt")

_MASK64 = (1 << 64) - 1
_KIND_SALT = {
    "rademacher": 0x5241444D41434845,
    "gaussian": 0x4741555353494E31,
    "sjlt": 0x534A4C5453504152,
}
_MIX_A = 0xBF58476D1CE4E5B9
_MIX_B = 0x94D049BB133111EB
_GOLDEN = 0x9E3779B97F4A7C15
_WEYL = 0xD1B54A32D192ED03
_TABLE_SIZE = 1 << 16
_FEATURE_CHUNK = 4096


def _signed(v: int) -> int:
    """The int64 with the same 64 bits as the unsigned value ``v``."""
    v &= _MASK64
    return v - (1 << 64) if v >= 1 << 63 else v


def _mix64_int(z: int) -> int:
    z &= _MASK64
    z ^= z >> 30
    z = (z * _MIX_A) & _MASK64
    z ^= z >> 27
    z = (z * _MIX_B) & _MASK64
    return z ^ (z >> 31)


def _shr(z: torch.Tensor, s: int) -> torch.Tensor:
    """Logical right shift of int64 bits (torch's >> is arithmetic)."""
    return (z >> s) & ((1 << (64 - s)) - 1)


def _mix64(z: torch.Tensor) -> torch.Tensor:
    z = z ^ _shr(z, 30)
    z = z * _signed(_MIX_A)
    z = z ^ _shr(z, 27)
    z = z * _signed(_MIX_B)
    return z ^ _shr(z, 31)


def seed_key(seed: int, kind: str) -> int:
    """``mix64(seed ^ salt[kind])`` as an unsigned Python int."""
    return _mix64_int((seed & _MASK64) ^ _KIND_SALT[kind])


def row_keys(seed: int, kind: str, features: torch.Tensor) -> torch.Tensor:
    """Row keys of absolute feature indices ``features`` (int64 [D]) -> int64 [D]."""
    key = torch.tensor(_signed(seed_key(seed, kind)), dtype=torch.int64)
    return _mix64(key + features.to(torch.int64) * _signed(_GOLDEN))


def _words(rkeys: torch.Tensor, columns: torch.Tensor) -> torch.Tensor:
    """word(d, c) for row keys [D] and word columns [C] -> int64 [D, C]."""
    return _mix64(rkeys[:, None] + columns[None, :].to(torch.int64) * _signed(_WEYL))


def gaussian_table() -> torch.Tensor:
    """float32 [65536]: Phi^-1((q + 0.5) / 65536), as the C++ table is computed."""
    u = (torch.arange(_TABLE_SIZE, dtype=torch.float64) + 0.5) / _TABLE_SIZE
    return torch.special.ndtri(u).to(torch.float32)


def _scale(kind: str, k: int, nnz: int) -> float:
    return 1.0 / math.sqrt(nnz if kind == "sjlt" else k)


def _unscaled_block(kind: str, rkeys: torch.Tensor, k: int, nnz: int) -> torch.Tensor:
    """The unscaled entries (+-1, table values, or sparse +-1) for rows ``rkeys`` -> float32 [D, k]."""
    j = torch.arange(k, dtype=torch.int64)
    if kind == "rademacher":
        words = _words(rkeys, torch.arange((k + 63) // 64))[:, j // 64]  # [D, k]
        negative = _shift_per_column(words, j % 64) & 1
        return 1.0 - 2.0 * negative.to(torch.float32)
    if kind == "gaussian":
        words = _words(rkeys, torch.arange((k + 3) // 4))[:, j // 4]
        index = _shift_per_column(words, 16 * (j % 4)) & 0xFFFF
        return gaussian_table()[index]
    block = torch.zeros(rkeys.shape[0], k, dtype=torch.float32)
    rows = torch.arange(rkeys.shape[0])
    for t in range(nnz):
        h = _words(rkeys, torch.tensor([t]))[:, 0]
        lo = (t * k) // nnz
        size = ((t + 1) * k) // nnz - lo
        bucket = lo + (((h & 0xFFFFFFFF) * size) >> 32)
        negative = _shr(h, 63) & 1
        block[rows, bucket] = 1.0 - 2.0 * negative.to(torch.float32)
    return block


def _shift_per_column(words: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
    """Logical right shift of each column of int64 ``words`` by its own amount."""
    out = torch.empty_like(words)
    for s in shifts.unique().tolist():
        cols = shifts == s
        out[:, cols] = _shr(words[:, cols], s) if s else words[:, cols]
    return out


def _check(kind: str, D: int, k: int, feature_offset: int, nnz: int, op: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"{op}: argument 'kind' must be one of 'rademacher', 'gaussian', 'sjlt', got '{kind}'")
    for name, value in (("k", k), ("D", D)):
        if value < 1:
            raise ValueError(f"{op}: argument '{name}' must be >= 1, got {value}")
    if feature_offset < 0:
        raise ValueError(f"{op}: argument 'feature_offset' must be >= 0, got {feature_offset}")
    if nnz < 1:
        raise ValueError(f"{op}: argument 'nnz' must be >= 1, got {nnz}")
    if kind == "sjlt" and nnz > k:
        raise ValueError(f"{op}: argument 'nnz' must be <= k ({k}) for kind 'sjlt', got {nnz}")


def _check_input(t: torch.Tensor, op: str, arg: str, layout: str) -> None:
    if t.dim() != 2:
        raise ValueError(
            f"{op}: argument '{arg}' must be a 2-D tensor {layout}, got a {t.dim()}-D tensor of shape {list(t.shape)}"
        )
    if t.dtype not in (torch.float32, torch.float64, torch.bfloat16, torch.float16):
        raise TypeError(f"{op}: argument '{arg}' must be float32, float64, bfloat16 or float16, got {t.dtype}")


def _out_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def random_matrix(
    D: int,
    k: int,
    seed: int,
    kind: str = "rademacher",
    feature_offset: int = 0,
    nnz: int = 1,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """R [D, k]: rows ``feature_offset .. feature_offset + D - 1`` of the implied matrix."""
    _check(kind, D, k, feature_offset, nnz, "random_matrix")
    dtype = dtype or torch.float32
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"random_matrix: argument 'dtype' must be float32 or float64, got {dtype}")
    scale = torch.tensor(_scale(kind, k, nnz), dtype=dtype)
    chunks = []
    for start in range(0, D, _FEATURE_CHUNK):
        features = torch.arange(feature_offset + start, feature_offset + min(D, start + _FEATURE_CHUNK))
        chunks.append(_unscaled_block(kind, row_keys(seed, kind, features), k, nnz).to(dtype) * scale)
    return torch.cat(chunks).to(device or "cpu")


def project(
    x: torch.Tensor, k: int, seed: int, kind: str = "rademacher", feature_offset: int = 0, nnz: int = 1
) -> torch.Tensor:
    """x [N, D] @ R [D, k] -> [N, k]; float64 for float64 input, float32 otherwise."""
    _check_input(x, "project", "x", "[N, D]")
    D = x.shape[1]
    if D < 1:
        raise ValueError(f"project: argument 'x' must have D >= 1 features, got shape {list(x.shape)}")
    _check(kind, D, k, feature_offset, nnz, "project")
    dtype = _out_dtype(x.dtype)
    out = torch.zeros(x.shape[0], k, dtype=dtype, device=x.device)
    for start in range(0, D, _FEATURE_CHUNK):
        stop = min(D, start + _FEATURE_CHUNK)
        R = random_matrix(stop - start, k, seed, kind, feature_offset + start, nnz, dtype, x.device)
        out += x[:, start:stop].to(dtype) @ R
    return out


def project_t(
    y: torch.Tensor, D: int, seed: int, kind: str = "rademacher", feature_offset: int = 0, nnz: int = 1
) -> torch.Tensor:
    """y [N, k] @ R[D, k]^T -> [N, D], the transposed sketch (the backward of :func:`project`)."""
    _check_input(y, "project_t", "y", "[N, k]")
    k = y.shape[1]
    _check(kind, D, k, feature_offset, nnz, "project_t")
    dtype = _out_dtype(y.dtype)
    pieces = []
    for start in range(0, D, _FEATURE_CHUNK):
        stop = min(D, start + _FEATURE_CHUNK)
        R = random_matrix(stop - start, k, seed, kind, feature_offset + start, nnz, dtype, y.device)
        pieces.append(y.to(dtype) @ R.T)
    return torch.cat(pieces, dim=1)


# --------------------------------------------------------------------------------------------
# Issue 5: gradient sketches of linear layers and scoring. Every oracle computes in float64 and
# returns float64 for float64 inputs, float32 otherwise, like the compiled ops.

_FLOATS = (torch.float32, torch.float64, torch.bfloat16, torch.float16)


def derive_seed(seed: int, index: int) -> int:
    """Seed of the ``index``-th independent sketch derived from ``seed``.

    ``int64(mix64(uint64(seed) ^ (uint64(index) * GOLDEN)))`` with mix64 the SplitMix64 finalizer
    of :func:`seed_key`; ``project_factored`` uses index 0 for R_in and 1 for R_out.
    """
    return _signed(_mix64_int((seed & _MASK64) ^ ((index * _GOLDEN) & _MASK64)))


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
