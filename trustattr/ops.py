"""Typed wrappers over ``torch.ops.trustattr.*``: the only module that touches ``trustattr._C``.

Importing this module loads the compiled extension, whose ``TORCH_LIBRARY``
block defines every op's schema and whose kernels register for CPU and CUDA.
This module adds the fake (meta) kernels used by ``torch.compile`` and the
autograd formulas. If the extension is missing or fails to load, the same
schemas are defined here with the pure-PyTorch reference kernels of
:mod:`trustattr.reference` as their implementation, and one warning says so:
everything keeps working, only slower.
"""

from __future__ import annotations

import os
import warnings

import torch

from trustattr import reference

__all__ = [
    "EXTENSION_ERROR",
    "EXTENSION_LOADED",
    "SCHEMAS",
    "extension_info",
    "project",
    "project_t",
    "random_matrix",
]

# The op contract. csrc/trustattr.cpp defines the same schemas; a test checks they agree.
SCHEMAS: dict[str, str] = {
    "project": 'project(Tensor x, int k, int seed, str kind="rademacher", int feature_offset=0, int nnz=1) -> Tensor',
    "project_t": 'project_t(Tensor y, int D, int seed, str kind="rademacher", int feature_offset=0, int nnz=1) -> Tensor',
    "random_matrix": (
        'random_matrix(int D, int k, int seed, str kind="rademacher", int feature_offset=0, int nnz=1, '
        "ScalarType? dtype=None, Device? device=None) -> Tensor"
    ),
}

# Reference implementations served when the compiled extension is unavailable.
_FALLBACKS = {
    "project": reference.project,
    "project_t": reference.project_t,
    "random_matrix": reference.random_matrix,
}


def _load_extension() -> tuple[bool, str | None]:
    if os.environ.get("TRUSTATTR_DISABLE_EXTENSION") == "1":
        return False, "disabled by TRUSTATTR_DISABLE_EXTENSION=1"
    try:
        from trustattr import _C  # noqa: F401  (importing runs the op registrations)
    except Exception as exc:  # any failure: missing file, ABI mismatch, missing symbol
        return False, f"{type(exc).__name__}: {exc}"
    return True, None


EXTENSION_LOADED, EXTENSION_ERROR = _load_extension()

if not EXTENSION_LOADED:
    warnings.warn(
        f"trustattr: the compiled extension trustattr._C could not be loaded ({EXTENSION_ERROR}); "
        "the ops fall back to the pure-PyTorch reference kernels (correct, much slower). Rebuild with: "
        "pip install --no-build-isolation -e .",
        RuntimeWarning,
        stacklevel=2,
    )
    _fallback_library = torch.library.Library("trustattr", "DEF")
    for _name, _schema in SCHEMAS.items():
        _fallback_library.define(_schema)
        _fallback_library.impl(_name, _FALLBACKS[_name], "CompositeExplicitAutograd")


def _sketch_out_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


# ----------------------------------------------------------------- fake kernels


@torch.library.register_fake("trustattr::project")
def _project_fake(x, k, seed, kind="rademacher", feature_offset=0, nnz=1):
    torch._check(x.dim() == 2, lambda: f"project: argument 'x' must be a 2-D tensor [N, D], got {x.dim()}-D")
    torch._check(k >= 1, lambda: f"project: argument 'k' must be >= 1, got {k}")
    return x.new_empty((x.shape[0], k), dtype=_sketch_out_dtype(x.dtype))


@torch.library.register_fake("trustattr::project_t")
def _project_t_fake(y, D, seed, kind="rademacher", feature_offset=0, nnz=1):
    torch._check(y.dim() == 2, lambda: f"project_t: argument 'y' must be a 2-D tensor [N, k], got {y.dim()}-D")
    torch._check(D >= 1, lambda: f"project_t: argument 'D' must be >= 1, got {D}")
    return y.new_empty((y.shape[0], D), dtype=_sketch_out_dtype(y.dtype))


@torch.library.register_fake("trustattr::random_matrix")
def _random_matrix_fake(D, k, seed, kind="rademacher", feature_offset=0, nnz=1, dtype=None, device=None):
    return torch.empty((D, k), dtype=dtype or torch.float32, device=device or "cpu")


# --------------------------------------------------------------------- autograd
#
# project and project_t are each other's adjoints. The formulas are registered on
# the ops (so torch.ops.trustattr.* is differentiable under plain autograd) and
# wrapped again in autograd.Function classes with setup_context and a vmap rule,
# which is what torch.func.grad/vmap need on torch 2.13 (register_autograd alone
# fails there, pytorch/pytorch#170834).


def _setup_sketch(ctx, inputs, output):
    tensor, dim, seed, kind, feature_offset, nnz = inputs
    ctx.sketch = (seed, kind, feature_offset, nnz)
    ctx.in_dim = tensor.shape[1]
    ctx.in_dtype = tensor.dtype


def _project_backward(ctx, grad):
    seed, kind, feature_offset, nnz = ctx.sketch
    g = torch.ops.trustattr.project_t(grad.contiguous(), ctx.in_dim, seed, kind, feature_offset, nnz)
    return g.to(ctx.in_dtype), None, None, None, None, None


def _project_t_backward(ctx, grad):
    seed, kind, feature_offset, nnz = ctx.sketch
    g = torch.ops.trustattr.project(grad.contiguous(), ctx.in_dim, seed, kind, feature_offset, nnz)
    return g.to(ctx.in_dtype), None, None, None, None, None


torch.library.register_autograd("trustattr::project", _project_backward, setup_context=_setup_sketch)
torch.library.register_autograd("trustattr::project_t", _project_t_backward, setup_context=_setup_sketch)


def _rowwise_vmap(apply):
    """vmap rule of a row-wise op [N, C] -> [N, C']: fold the vmapped dim into the rows."""

    def rule(info, in_dims, tensor, *args):
        dim = in_dims[0]
        if dim is None:
            return apply(tensor, *args), None
        tensor = tensor.movedim(dim, 0)  # [B, N, C]
        batch, rows = tensor.shape[0], tensor.shape[1]
        out = apply(tensor.reshape(batch * rows, tensor.shape[2]), *args)
        return out.reshape(batch, rows, out.shape[-1]), 0

    return rule


class _Project(torch.autograd.Function):
    @staticmethod
    def forward(x, k, seed, kind, feature_offset, nnz):
        return torch.ops.trustattr.project(x, k, seed, kind, feature_offset, nnz)

    setup_context = staticmethod(_setup_sketch)

    @staticmethod
    def backward(ctx, grad):
        seed, kind, feature_offset, nnz = ctx.sketch
        g = _ProjectT.apply(grad.contiguous(), ctx.in_dim, seed, kind, feature_offset, nnz)
        return g.to(ctx.in_dtype), None, None, None, None, None

    @staticmethod
    def vmap(info, in_dims, x, k, seed, kind, feature_offset, nnz):
        return _rowwise_vmap(_Project.apply)(info, in_dims, x, k, seed, kind, feature_offset, nnz)


class _ProjectT(torch.autograd.Function):
    @staticmethod
    def forward(y, D, seed, kind, feature_offset, nnz):
        return torch.ops.trustattr.project_t(y, D, seed, kind, feature_offset, nnz)

    setup_context = staticmethod(_setup_sketch)

    @staticmethod
    def backward(ctx, grad):
        seed, kind, feature_offset, nnz = ctx.sketch
        g = _Project.apply(grad.contiguous(), ctx.in_dim, seed, kind, feature_offset, nnz)
        return g.to(ctx.in_dtype), None, None, None, None, None

    @staticmethod
    def vmap(info, in_dims, y, D, seed, kind, feature_offset, nnz):
        return _rowwise_vmap(_ProjectT.apply)(info, in_dims, y, D, seed, kind, feature_offset, nnz)


# ------------------------------------------------------------------- public API


def project(
    x: torch.Tensor,
    k: int,
    seed: int,
    kind: str = "rademacher",
    feature_offset: int = 0,
    nnz: int = 1,
) -> torch.Tensor:
    """Random projection ``x @ R`` of every row, with R generated on the fly and never stored.

    Args:
        x (Tensor): [N, D], float32, bfloat16, float16 or float64; any strides.
        k (int): sketch dimension, >= 1 (no multiple-of-512 rule).
        seed (int): any int64; with ``kind`` it fixes R.
        kind (str): ``"rademacher"`` (+-1/sqrt(k)), ``"gaussian"`` (N(0,1)/sqrt(k), a 65,536-level
            quantile table) or ``"sjlt"`` (each feature hits ``nnz`` outputs with random signs,
            scaled 1/sqrt(nnz); memory-bound).
        feature_offset (int): absolute index of x's first column in a longer vector. Projecting
            pieces of a vector with their offsets and summing equals projecting the whole vector.
        nnz (int): nonzeros per feature for ``sjlt`` (1 <= nnz <= k); ignored by dense kinds.

    Returns:
        Tensor: [N, k], float64 for float64 input, float32 otherwise. Differentiable (the backward
        is :func:`project_t`), and usable under ``torch.func`` and ``torch.compile``.

    Entry (d, j) of R is a pure function of (seed, kind, feature_offset + d, j), identical on
    CPU and CUDA, at any batch size, thread count or tiling; see :func:`random_matrix`.
    """
    return _Project.apply(x, k, seed, kind, feature_offset, nnz)


def project_t(
    y: torch.Tensor,
    D: int,
    seed: int,
    kind: str = "rademacher",
    feature_offset: int = 0,
    nnz: int = 1,
) -> torch.Tensor:
    """Transposed sketch ``y @ R^T``: maps [N, k] sketches back to [N, D] (the adjoint of :func:`project`).

    Args:
        y (Tensor): [N, k], float32, bfloat16, float16 or float64.
        D (int): number of features of the implied matrix R [D, k], >= 1.
        seed, kind, feature_offset, nnz: as in :func:`project`.

    Returns:
        Tensor: [N, D], float64 for float64 input, float32 otherwise. Differentiable.
    """
    return _ProjectT.apply(y, D, seed, kind, feature_offset, nnz)


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
    """Materializes rows ``feature_offset .. feature_offset + D - 1`` of the matrix :func:`project` uses.

    Returns:
        Tensor: [D, k] float32 (or ``dtype=torch.float64``) on ``device`` (default CPU);
        bit-identical to :func:`trustattr.reference.random_matrix`.
    """
    if device is not None:
        device = torch.device(device)
    return torch.ops.trustattr.random_matrix(D, k, seed, kind, feature_offset, nnz, dtype=dtype, device=device)


def extension_info() -> dict[str, object]:
    """What is running: whether the compiled kernels loaded, the CPU variant, CUDA kernels."""
    info: dict[str, object] = {"compiled": EXTENSION_LOADED, "error": EXTENSION_ERROR}
    if EXTENSION_LOADED:
        info["cpu_isa"] = torch.ops.trustattr.cpu_isa()
        info["cuda_kernels"] = torch.ops.trustattr.has_cuda_kernels()
    else:
        info["cpu_isa"] = "reference"
        info["cuda_kernels"] = False
    return info
