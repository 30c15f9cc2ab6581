"""project / project_t against the float64 reference, and the bit-for-bit randomness contract."""

from __future__ import annotations

import pytest
import torch

from tests.ops.helpers import rel_err
from trustattr import ops, reference

KINDS = ["rademacher", "gaussian", "sjlt"]
# Relative error ||out - ref|| / ||ref|| allowed per input dtype (ref = float64 reference on the same,
# already-rounded input). float32/bf16/fp16 inputs accumulate in float32.
TOLERANCE = {torch.float64: 1e-12, torch.float32: 2e-6, torch.bfloat16: 2e-6, torch.float16: 2e-6}
SHAPES = [(1, 1, 1), (3, 7, 5), (13, 100, 70), (5, 1000, 129), (17, 4100, 33), (2, 70000, 64)]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("D,k,offset", [(1, 1, 0), (100, 70, 0), (33, 5, 1000), (257, 129, 7), (64, 200, 2**40)])
def test_random_matrix_is_bit_identical_to_reference(kind, D, k, offset):
    nnz = 3 if kind == "sjlt" and k >= 3 else 1
    for dtype in (torch.float32, torch.float64):
        got = ops.random_matrix(D, k, 42, kind, offset, nnz, dtype=dtype)
        want = reference.random_matrix(D, k, 42, kind, offset, nnz, dtype=dtype)
        assert got.dtype == dtype and got.shape == (D, k)
        assert torch.equal(got, want), f"{kind} D={D} k={k} offset={offset} dtype={dtype}"


def test_random_matrix_entries_have_the_documented_values():
    k, nnz = 64, 4
    rad = ops.random_matrix(500, k, 7, "rademacher")
    assert set(rad.unique().tolist()) == {-(k**-0.5), k**-0.5}
    gauss = ops.random_matrix(2000, k, 7, "gaussian", dtype=torch.float64) * k**0.5
    assert gauss.abs().max() <= 4.33
    assert abs(gauss.mean().item()) < 0.01 and abs(gauss.var().item() - 1) < 0.02
    sjlt = ops.random_matrix(300, k, 7, "sjlt", nnz=nnz)
    assert torch.equal((sjlt != 0).sum(1), torch.full((300,), nnz))  # distinct buckets per feature
    assert torch.allclose(sjlt[sjlt != 0].abs(), torch.tensor(nnz**-0.5))
    blocks = (sjlt != 0).nonzero()[:, 1].view(300, nnz) // (k // nnz)  # hit t lies in block t
    assert torch.equal(blocks, torch.arange(nnz).expand(300, nnz))


def test_seed_kind_and_offset_change_the_matrix():
    base = ops.random_matrix(50, 40, 1)
    assert not torch.equal(base, ops.random_matrix(50, 40, 2))
    assert not torch.equal(base.sign(), ops.random_matrix(50, 40, 1, "gaussian").sign())
    assert torch.equal(ops.random_matrix(50, 40, 1, feature_offset=10)[:40], base[10:])


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype", list(TOLERANCE))
@pytest.mark.parametrize("N,D,k", SHAPES)
def test_project_matches_float64_reference(kind, dtype, N, D, k, gen):
    nnz = 2 if kind == "sjlt" and k >= 2 else 1
    x = torch.randn(N, D, generator=gen).to(dtype)
    out = ops.project(x, k, 11, kind, 5, nnz)
    ref = reference.project(x.double(), k, 11, kind, 5, nnz)
    assert out.shape == (N, k) and out.dtype == (torch.float64 if dtype == torch.float64 else torch.float32)
    assert rel_err(out, ref) < TOLERANCE[dtype], f"{kind} {dtype} N={N} D={D} k={k}"


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16])
@pytest.mark.parametrize("N,D,k", SHAPES)
def test_project_t_matches_float64_reference(kind, dtype, N, D, k, gen):
    y = torch.randn(N, k, generator=gen).to(dtype)
    out = ops.project_t(y, D, 3, kind, 9, 1)
    ref = reference.project_t(y.double(), D, 3, kind, 9, 1)
    assert out.shape == (N, D)
    assert rel_err(out, ref) < TOLERANCE[dtype]


@pytest.mark.parametrize("kind", KINDS)
def test_rows_do_not_depend_on_batch_size_or_threads(kind, gen, threads):
    x = torch.randn(40, 9000, generator=gen)
    with threads(2):
        full = ops.project(x, 300, 5, kind)
        back = ops.project_t(full, 9000, 5, kind)
    with threads(1):
        single_thread = ops.project(x, 300, 5, kind)
        back_single = ops.project_t(full, 9000, 5, kind)
    assert torch.equal(full, single_thread)
    assert torch.equal(back, back_single)
    for start, stop in [(0, 1), (3, 4), (7, 20), (13, 40)]:
        assert torch.equal(ops.project(x[start:stop], 300, 5, kind), full[start:stop])
        assert torch.equal(ops.project_t(full[start:stop], 9000, 5, kind), back[start:stop])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize("nnz", [1, 3])
@pytest.mark.parametrize("k", [64, 1000])  # 1000: the accumulator outgrows L1
def test_sjlt_rows_are_the_same_by_themselves_in_full_vectors_and_strided(dtype, nnz, k, gen):
    """Rows of a full SIMD vector and leftover rows take different CPU paths; neither may show in the bits."""
    x = torch.randn(37, 70_000, generator=gen).to(dtype)  # 3 feature groups; 32 or 36 vector rows + the rest
    full = ops.project(x, k, 11, "sjlt", 5, nnz)
    strided = ops.project(x.t().contiguous().t(), k, 11, "sjlt", 5, nnz)
    assert torch.equal(strided, full)
    for row in range(37):
        assert torch.equal(ops.project(x[row:row + 1], k, 11, "sjlt", 5, nnz), full[row:row + 1]), row
    ref = reference.project(x.double(), k, 11, "sjlt", 5, nnz)
    assert rel_err(full, ref) < TOLERANCE[dtype]


@pytest.mark.parametrize("kind", KINDS)
def test_pieces_with_offsets_sum_to_the_whole(kind, gen):
    x = torch.randn(6, 5000, generator=gen, dtype=torch.float64)
    whole = ops.project(x, 96, 8, kind, 100)
    cuts = [0, 1, 1700, 1701, 4096, 5000]
    parts = sum(ops.project(x[:, a:b], 96, 8, kind, 100 + a) for a, b in zip(cuts, cuts[1:]))
    assert torch.allclose(parts, whole, rtol=0, atol=1e-12)


@pytest.mark.parametrize("kind", KINDS)
def test_non_contiguous_inputs(kind, gen):
    base = torch.randn(300, 40, generator=gen)
    x = base.T  # [40, 300], column stride 40
    assert not x.is_contiguous()
    assert torch.allclose(ops.project(x, 50, 1, kind), ops.project(x.contiguous(), 50, 1, kind), atol=1e-6)
    y = torch.randn(9, 100, generator=gen)[:, ::2]  # [9, 50]
    assert torch.allclose(ops.project_t(y, 77, 1, kind), ops.project_t(y.contiguous(), 77, 1, kind), atol=1e-6)


@pytest.mark.parametrize("kind", ["rademacher", "gaussian"])
def test_jl_preserves_norms_and_inner_products(kind):
    """Dense sketches: E||R^T x||^2 = ||x||^2 with variance <= 2/k (rademacher) or 2/k (gaussian)."""
    gen = torch.Generator().manual_seed(0)
    D, k, n = 3000, 1024, 64
    x = torch.randn(n, D, generator=gen, dtype=torch.float64)
    y = torch.randn(n, D, generator=gen, dtype=torch.float64) + 0.5 * x
    px, py = ops.project(x, k, 99, kind), ops.project(y, k, 99, kind)
    ratio = px.pow(2).sum(1) / x.pow(2).sum(1)
    sigma = (2 / k) ** 0.5
    assert (ratio - 1).abs().max() < 6 * sigma  # every vector within 6 standard deviations
    assert abs(ratio.mean().item() - 1) < 4 * sigma / n**0.5  # the mean within 4 standard errors
    exact = (x * y).sum(1)
    bound = 6 * ((x.pow(2).sum(1) * y.pow(2).sum(1) + exact**2) / k).sqrt()
    assert ((px * py).sum(1) - exact).abs().le(bound).all()


def test_sjlt_preserves_norms():
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(64, 20000, generator=gen, dtype=torch.float64)
    for nnz in (1, 4):
        ratio = ops.project(x, 1024, 3, "sjlt", nnz=nnz).pow(2).sum(1) / x.pow(2).sum(1)
        assert (ratio - 1).abs().max() < 6 * (2 / 1024) ** 0.5


def test_large_feature_offsets_use_64_bit_indices():
    x = torch.ones(1, 3, dtype=torch.float64)
    offset = 3 * 2**40 + 5
    got = ops.project(x, 16, 4, "rademacher", offset)
    want = reference.random_matrix(3, 16, 4, "rademacher", offset, dtype=torch.float64).sum(0, keepdim=True)
    assert torch.allclose(got, want, atol=1e-15)


@pytest.mark.slow
def test_rows_times_features_beyond_2_to_32():
    """N*D > 2^32 elements: zero pages cost no memory; a few nonzeros pin the expected result."""
    D = 2**31 + 64
    x = torch.zeros(2, D, dtype=torch.bfloat16)
    x[0, 3] = 2.0
    x[1, D - 5 :] = 1.0
    out = ops.project(x, 4, 1, "sjlt")
    R = reference.random_matrix(5, 4, 1, "sjlt", D - 5, dtype=torch.float64)
    assert torch.allclose(out[1].double(), R.sum(0), atol=1e-6)
    assert torch.allclose(out[0].double(), 2 * reference.random_matrix(1, 4, 1, "sjlt", 3, dtype=torch.float64)[0])
