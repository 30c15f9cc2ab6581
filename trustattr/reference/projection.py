"""Oracles of random_matrix, project and project_t (the matrix built chunk by chunk of features)."""

from __future__ import annotations

import math

import torch

from trustattr.reference.rng import KINDS, _unscaled_block, row_keys

_FEATURE_CHUNK = 4096
_FLOATS = (torch.float32, torch.float64, torch.bfloat16, torch.float16)


def _scale(kind: str, k: int, nnz: int) -> float:
    return 1.0 / math.sqrt(nnz if kind == "sjlt" else k)


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
