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

# The op contract. csrc/trustattr.cpp defines the same schemas; a test checks they agree.
SCHEMAS: dict[str, str] = {
    "project": 'project(Tensor x, int k, int seed, str kind="rademacher", int feature_offset=0, int nnz=1) -> Tensor',
    "project_t": 'project_t(Tensor y, int D, int seed, str kind="rademacher", int feature_offset=0, int nnz=1) -> Tensor',
    "random_matrix": (
        'random_matrix(int D, int k, int seed, str kind="rademacher", int feature_offset=0, int nnz=1, '
        "ScalarType? dtype=None, Device? device=None) -> Tensor"
    ),
    "project_factored": (
        "project_factored(Tensor a, Tensor g, int k_in, int k_out, int seed, Tensor? segments=None, "
        "int num_segments=-1) -> Tensor"
    ),
    "project_outer": (
        "project_outer(Tensor a, Tensor g, int k, int seed, int feature_offset=0, Tensor? segments=None, "
        "int num_segments=-1) -> Tensor"
    ),
    "segment_sum": "segment_sum(Tensor x, Tensor segments, int num_segments) -> Tensor",
    "score": "score(Tensor train, Tensor query, bool normalize=False) -> Tensor",
    "topk_score": (
        "topk_score(Tensor train, Tensor query, int topk, bool normalize=False, bool largest=True) "
        "-> (Tensor values, Tensor indices)"
    ),
    "datainf_scores": "datainf_scores(Tensor train, Tensor query, float? damping=None, int[]? blocks=None) -> Tensor",
}

# Reference implementations served when the compiled extension is unavailable.
_FALLBACKS = {
    "project": reference.project,
    "project_t": reference.project_t,
    "random_matrix": reference.random_matrix,
    "project_factored": reference.project_factored,
    "project_outer": reference.project_outer,
    "segment_sum": reference.segment_sum,
    "score": reference.score,
    "topk_score": reference.topk_score,
    "datainf_scores": reference.datainf_scores,
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


def _same_device(op: str, names: tuple[str, str], *tensors: torch.Tensor) -> None:
    if tensors[0].device != tensors[1].device:
        raise ValueError(f"{op}: arguments '{names[0]}' and '{names[1]}' must be on the same device, "
                         f"got {tensors[0].device} and {tensors[1].device}")


def _factors_fake(op, a, g, segments, num_segments):
    """Output rows of a gradient-sketch op, after the shape checks a fake tensor allows."""
    torch._check(a.dim() == 3, lambda: f"{op}: argument 'a' must be a 3-D tensor [N, T, d_in], got {a.dim()}-D")
    torch._check(g.dim() == 3, lambda: f"{op}: argument 'g' must be a 3-D tensor [N, T, d_out], got {g.dim()}-D")
    _same_device(op, ("a", "g"), a, g)
    for dim, what in ((0, "number of rows N"), (1, "number of tokens T")):
        torch._check(a.shape[dim] == g.shape[dim],
                     lambda: f"{op}: argument 'g' must have the same {what} as 'a' ({a.shape[dim]})")
    if segments is None:
        return a.shape[0]
    _same_device(op, ("a", "segments"), a, segments)
    return num_segments


@torch.library.register_fake("trustattr::project_factored")
def _project_factored_fake(a, g, k_in, k_out, seed, segments=None, num_segments=-1):
    rows = _factors_fake("project_factored", a, g, segments, num_segments)
    return a.new_empty((rows, k_out * k_in), dtype=_sketch_out_dtype(a.dtype))


@torch.library.register_fake("trustattr::project_outer")
def _project_outer_fake(a, g, k, seed, feature_offset=0, segments=None, num_segments=-1):
    rows = _factors_fake("project_outer", a, g, segments, num_segments)
    return a.new_empty((rows, k), dtype=_sketch_out_dtype(a.dtype))


@torch.library.register_fake("trustattr::segment_sum")
def _segment_sum_fake(x, segments, num_segments):
    _same_device("segment_sum", ("x", "segments"), x, segments)
    return x.new_empty((num_segments, x.shape[1]), dtype=_sketch_out_dtype(x.dtype))


def _score_dtype(train: torch.Tensor, query: torch.Tensor) -> torch.dtype:
    return torch.float64 if torch.float64 in (train.dtype, query.dtype) else torch.float32


@torch.library.register_fake("trustattr::score")
def _score_fake(train, query, normalize=False):
    _same_device("score", ("train", "query"), train, query)
    return train.new_empty((train.shape[0], query.shape[0]), dtype=_score_dtype(train, query))


@torch.library.register_fake("trustattr::topk_score")
def _topk_score_fake(train, query, topk, normalize=False, largest=True):
    _same_device("topk_score", ("train", "query"), train, query)
    values = train.new_empty((query.shape[0], topk), dtype=_score_dtype(train, query))
    return values, train.new_empty((query.shape[0], topk), dtype=torch.int64)


@torch.library.register_fake("trustattr::datainf_scores")
def _datainf_scores_fake(train, query, damping=None, blocks=None):
    _same_device("datainf_scores", ("train", "query"), train, query)
    return train.new_empty((train.shape[0],), dtype=_score_dtype(train, query))


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
