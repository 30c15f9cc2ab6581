"""The contract of every ``trustattr::`` op: its schema and its fake (meta) kernel.

Pure Python over plain (possibly fake) tensors; :mod:`trustattr.ops` registers these functions
with the library (``register_fake``) and defines the schemas when the compiled extension is
missing. A fake kernel runs the checks a tensor without data allows and returns empty outputs
of the right shape, dtype and device, which is what ``torch.compile`` traces with.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

__all__ = ["FAKES", "SCHEMAS"]

# csrc/trustattr.cpp defines the same schemas; a test checks they agree.
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


def _sketch_out_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def _score_dtype(train: torch.Tensor, query: torch.Tensor) -> torch.dtype:
    return torch.float64 if torch.float64 in (train.dtype, query.dtype) else torch.float32


def _same_device(op: str, names: tuple[str, str], *tensors: torch.Tensor) -> None:
    if tensors[0].device != tensors[1].device:
        raise ValueError(f"{op}: arguments '{names[0]}' and '{names[1]}' must be on the same device, "
                         f"got {tensors[0].device} and {tensors[1].device}")


def _project_fake(x, k, seed, kind="rademacher", feature_offset=0, nnz=1):
    torch._check(x.dim() == 2, lambda: f"project: argument 'x' must be a 2-D tensor [N, D], got {x.dim()}-D")
    torch._check(k >= 1, lambda: f"project: argument 'k' must be >= 1, got {k}")
    return x.new_empty((x.shape[0], k), dtype=_sketch_out_dtype(x.dtype))


def _project_t_fake(y, D, seed, kind="rademacher", feature_offset=0, nnz=1):
    torch._check(y.dim() == 2, lambda: f"project_t: argument 'y' must be a 2-D tensor [N, k], got {y.dim()}-D")
    torch._check(D >= 1, lambda: f"project_t: argument 'D' must be >= 1, got {D}")
    return y.new_empty((y.shape[0], D), dtype=_sketch_out_dtype(y.dtype))


def _random_matrix_fake(D, k, seed, kind="rademacher", feature_offset=0, nnz=1, dtype=None, device=None):
    return torch.empty((D, k), dtype=dtype or torch.float32, device=device or "cpu")


def _factors_fake(op, a, g, segments, num_segments):
    """Output rows of a gradient-sketch op, after the shape checks a fake tensor allows."""
    torch._check(a.dim() == 3, lambda: f"{op}: argument 'a' must be a 3-D tensor [N, T, d_in], got {a.dim()}-D")
    torch._check(g.dim() == 3, lambda: f"{op}: argument 'g' must be a 3-D tensor [N, T, d_out], got {g.dim()}-D")
    _same_device(op, ("a", "g"), a, g)
    for dim, what in ((0, "number of rows N"), (1, "number of tokens T")):
        torch._check(a.shape[dim] == g.shape[dim],
                     lambda dim=dim, what=what: f"{op}: argument 'g' must have the same {what} as 'a' ({a.shape[dim]})")
    if segments is None:
        return a.shape[0]
    _same_device(op, ("a", "segments"), a, segments)
    return num_segments


def _project_factored_fake(a, g, k_in, k_out, seed, segments=None, num_segments=-1):
    rows = _factors_fake("project_factored", a, g, segments, num_segments)
    return a.new_empty((rows, k_out * k_in), dtype=_sketch_out_dtype(a.dtype))


def _project_outer_fake(a, g, k, seed, feature_offset=0, segments=None, num_segments=-1):
    rows = _factors_fake("project_outer", a, g, segments, num_segments)
    return a.new_empty((rows, k), dtype=_sketch_out_dtype(a.dtype))


def _segment_sum_fake(x, segments, num_segments):
    _same_device("segment_sum", ("x", "segments"), x, segments)
    return x.new_empty((num_segments, x.shape[1]), dtype=_sketch_out_dtype(x.dtype))


def _score_fake(train, query, normalize=False):
    _same_device("score", ("train", "query"), train, query)
    return train.new_empty((train.shape[0], query.shape[0]), dtype=_score_dtype(train, query))


def _topk_score_fake(train, query, topk, normalize=False, largest=True):
    _same_device("topk_score", ("train", "query"), train, query)
    values = train.new_empty((query.shape[0], topk), dtype=_score_dtype(train, query))
    return values, train.new_empty((query.shape[0], topk), dtype=torch.int64)


def _datainf_scores_fake(train, query, damping=None, blocks=None):
    _same_device("datainf_scores", ("train", "query"), train, query)
    return train.new_empty((train.shape[0],), dtype=_score_dtype(train, query))


# The fake kernel of every op, by op name (the keys of SCHEMAS).
FAKES: dict[str, Callable[..., object]] = {
    "project": _project_fake,
    "project_t": _project_t_fake,
    "random_matrix": _random_matrix_fake,
    "project_factored": _project_factored_fake,
    "project_outer": _project_outer_fake,
    "segment_sum": _segment_sum_fake,
    "score": _score_fake,
    "topk_score": _topk_score_fake,
    "datainf_scores": _datainf_scores_fake,
}
