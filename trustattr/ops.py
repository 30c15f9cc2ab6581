"""Typed wrappers over ``torch.ops.trustattr.*``: the only module that touches ``trustattr._C``.

Importing this module loads the compiled extension, whose ``TORCH_LIBRARY``
block defines every op's schema and whose kernels register for CPU and CUDA.
This module registers the fake (meta) kernels used by ``torch.compile`` (defined,
with the schemas, in :mod:`trustattr._op_contract`) and the autograd formulas. If the extension is missing or fails to load, the same
schemas are defined here with the pure-PyTorch reference kernels of
:mod:`trustattr.reference` as their implementation, and one warning says so:
everything keeps working, only slower.
"""

from __future__ import annotations

import os
import warnings

import torch

from trustattr import reference
from trustattr._op_contract import FAKES, SCHEMAS
from trustattr.reference import derive_seed

__all__ = [
    "EXTENSION_ERROR",
    "EXTENSION_LOADED",
    "SCHEMAS",
    "datainf_scores",
    "derive_seed",
    "extension_info",
    "project",
    "project_factored",
    "project_outer",
    "project_t",
    "random_matrix",
    "score",
    "segment_sum",
    "topk_score",
]


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
        _fallback_library.impl(_name, getattr(reference, _name), "CompositeExplicitAutograd")


for _name, _fake in FAKES.items():
    torch.library.register_fake(f"trustattr::{_name}")(_fake)


# --------------------------------------------------------------------- autograd
#
# project and project_t are each other's adjoints. The formulas are registered on
# the ops (so torch.ops.trustattr.* is differentiable under plain autograd) and
# wrapped again in autograd.Function classes with setup_context and a vmap rule,
# which is what torch.func.grad/vmap need on torch 2.13 (register_autograd alone
# fails there, pytorch/pytorch#170834).


def _setup_sketch(ctx, inputs, output):
    tensor, _dim, seed, kind, feature_offset, nnz = inputs
    ctx.sketch = (seed, kind, feature_offset, nnz)
    ctx.in_dim = tensor.shape[1]
    ctx.in_dtype = tensor.dtype


def _adjoint_grad(adjoint, ctx, grad):
    """Gradient of project (project_t): ``adjoint``, the other op, applied to grad, in the input's dtype."""
    seed, kind, feature_offset, nnz = ctx.sketch
    g = adjoint(grad.contiguous(), ctx.in_dim, seed, kind, feature_offset, nnz)
    return g.to(ctx.in_dtype), None, None, None, None, None


torch.library.register_autograd(
    "trustattr::project", lambda ctx, grad: _adjoint_grad(torch.ops.trustattr.project_t, ctx, grad),
    setup_context=_setup_sketch,
)
torch.library.register_autograd(
    "trustattr::project_t", lambda ctx, grad: _adjoint_grad(torch.ops.trustattr.project, ctx, grad),
    setup_context=_setup_sketch,
)


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


def _sketch_function(name: str, adjoint: str) -> type[torch.autograd.Function]:
    """The autograd.Function of op ``name`` (project or project_t); its backward applies ``adjoint``'s."""
    op = getattr(torch.ops.trustattr, name)

    class SketchFunction(torch.autograd.Function):
        @staticmethod
        def forward(tensor, dim, seed, kind, feature_offset, nnz):
            return op(tensor, dim, seed, kind, feature_offset, nnz)

        setup_context = staticmethod(_setup_sketch)

        @staticmethod
        def backward(ctx, grad):
            return _adjoint_grad(_SKETCH_FUNCTIONS[adjoint].apply, ctx, grad)

        @staticmethod
        def vmap(info, in_dims, tensor, *args):
            return _rowwise_vmap(SketchFunction.apply)(info, in_dims, tensor, *args)

    SketchFunction.__name__ = SketchFunction.__qualname__ = name.title().replace("_", "") + "Function"
    return SketchFunction


_SKETCH_FUNCTIONS = {"project": _sketch_function("project", "project_t"),
                     "project_t": _sketch_function("project_t", "project")}
_Project, _ProjectT = _SKETCH_FUNCTIONS["project"], _SKETCH_FUNCTIONS["project_t"]


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


def _num_segments(op: str, segments: torch.Tensor | None, num_segments: int | None) -> int:
    if segments is not None and num_segments is None:
        raise ValueError(f"{op}: argument 'num_segments' is required with 'segments' (the number of output rows)")
    return -1 if num_segments is None else num_segments


def project_factored(
    a: torch.Tensor,
    g: torch.Tensor,
    k_in: int,
    k_out: int,
    seed: int,
    segments: torch.Tensor | None = None,
    num_segments: int | None = None,
) -> torch.Tensor:
    """LoGra/Kronecker sketch of a linear layer's per-sample gradients, without forming them.

    ``out[n, o*k_in + i] = sum_t (R_out^T g[n,t])[o] * (R_in^T a[n,t])[i]`` = ``R_out^T G_n R_in``
    flattened row-major, with ``G_n = sum_t g[n,t] a[n,t]^T`` and
    ``R_in = random_matrix(d_in, k_in, derive_seed(seed, 0))``,
    ``R_out = random_matrix(d_out, k_out, derive_seed(seed, 1))`` (rademacher, 1/sqrt(k) scaled).

    Args:
        a (Tensor): [N, T, d_in] layer inputs (activations); float32/bfloat16/float16/float64.
        g (Tensor): [N, T, d_out] gradients w.r.t. the layer outputs, same dtype. Padding tokens
            are rows of zeros in g (or a): they contribute nothing.
        k_in, k_out (int): sketch sizes of the two factors, >= 1.
        seed (int): any int64.
        segments (Tensor | None): [N] int64 output row of every input row; rows sharing an output
            row are summed (e.g. a DPO pair: chosen + rejected). Needs ``num_segments``.
        num_segments (int | None): number of output rows when ``segments`` is given.

    Returns:
        Tensor: [N (or num_segments), k_out*k_in], float32 (float64 for float64 input), accumulated
        in the output dtype. A row's result is bit-identical at any batch size and thread count.
        Inference only (no autograd).
    """
    return torch.ops.trustattr.project_factored(
        a, g, k_in, k_out, seed, segments, _num_segments("project_factored", segments, num_segments)
    )


def project_outer(
    a: torch.Tensor,
    g: torch.Tensor,
    k: int,
    seed: int,
    feature_offset: int = 0,
    segments: torch.Tensor | None = None,
    num_segments: int | None = None,
) -> torch.Tensor:
    """The exact dense JL sketch of vec(G_n), G_n = sum_t g[n,t] a[n,t]^T, without materializing G_n.

    Equals ``project(G.flatten(1), k, seed, "rademacher", feature_offset)`` (row-major: feature
    ``o*d_in + i``) up to rounding. Layers projected with one seed and consecutive offsets
    (``feature_offset`` += d_out*d_in per layer) sum to one projection of the concatenated
    gradient. Arguments as in :func:`project_factored`; returns [N (or num_segments), k].
    """
    return torch.ops.trustattr.project_outer(
        a, g, k, seed, feature_offset, segments, _num_segments("project_outer", segments, num_segments)
    )


def segment_sum(x: torch.Tensor, segments: torch.Tensor, num_segments: int) -> torch.Tensor:
    """Sums the rows of x [R, k] into num_segments groups: ``out[s] = sum_{segments[r] == s} x[r]``.

    Rows are added in increasing r (float32, float64 for float64 input) -> [num_segments, k].
    """
    return torch.ops.trustattr.segment_sum(x, segments, num_segments)


def score(train: torch.Tensor, query: torch.Tensor, normalize: bool = False) -> torch.Tensor:
    """Inner products train [N, k] @ query [M, k]^T -> [N, M]; cosine similarity when ``normalize``.

    Computed in float64 when either input is float64, else float32 (bf16/fp16 rows are converted
    on the fly). A score is bit-identical to the value :func:`topk_score` reports for it.
    """
    return torch.ops.trustattr.score(train, query, normalize)


def topk_score(
    train: torch.Tensor, query: torch.Tensor, topk: int, normalize: bool = False, largest: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``topk`` best train rows of every query, streaming over train (never N x M in memory).

    ``train`` may be a CPU tensor over a memory-mapped file (``torch.from_numpy(np.memmap(...))``
    or ``torch.from_file``), so N can exceed RAM. Order: larger scores first (smaller when
    ``largest=False``), ties broken by the smaller row index, NaN ranked above every number.

    Returns:
        (values [M, topk], indices [M, topk] int64), best first.
    """
    return torch.ops.trustattr.topk_score(train, query, topk, normalize, largest)


def datainf_scores(
    train: torch.Tensor, query: torch.Tensor, damping: float | None = None, blocks: list[int] | None = None
) -> torch.Tensor:
    """DataInf influence of every train row on the (mean) query gradient (paper.md 4.1) -> [N].

    Args:
        train (Tensor): [N, k] per-example gradients (or features), any float dtype, may be memory-mapped.
        query (Tensor): [k] the mean test gradient v.
        damping (float | None): lambda for every block; None = per block, 0.1 x the mean squared entry.
        blocks (list[int] | None): column boundaries [0, b1, ..., k] of the per-layer blocks; None = one.

    ``score_k = -sum_l <h_l, g_kl>``, ``h_l = (1/(n lambda_l)) sum_i (v_l - c_il g_il)``,
    ``c_il = <v_l, g_il> / (lambda_l + ||g_il||^2)``: two streaming passes over train (plus one for
    the default damping). Positive = up-weighting the row increases the test loss.
    """
    return torch.ops.trustattr.datainf_scores(train, query, damping, blocks)


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
