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
    "gaussian_table",
    "project",
    "project_t",
    "random_matrix",
    "row_keys",
    "seed_key",
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
