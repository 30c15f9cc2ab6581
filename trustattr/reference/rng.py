"""The counter-based generator of ``csrc/sketch_rng.h`` in int64 tensor arithmetic.

Wrapping multiplies and masked logical shifts reproduce the C++ uint64 arithmetic, so the
entries built here equal the compiled kernels' bit for bit.
"""

from __future__ import annotations

import torch

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


def derive_seed(seed: int, index: int) -> int:
    """Seed of the ``index``-th independent sketch derived from ``seed``.

    ``int64(mix64(uint64(seed) ^ (uint64(index) * GOLDEN)))`` with mix64 the SplitMix64 finalizer
    of :func:`seed_key`; ``project_factored`` uses index 0 for R_in and 1 for R_out.
    """
    return _signed(_mix64_int((seed & _MASK64) ^ ((index * _GOLDEN) & _MASK64)))
