"""project_factored, project_outer and segment_sum: float64 oracles, the identities they promise
(project_outer == project of the materialized G, layers summing to one projection, segments ==
concatenated tokens), bit-identical rows across batch size / threads / strides / CPU variants,
opcheck, torch.compile and bad-input errors."""

from __future__ import annotations

import os

import pytest
import torch

from tests.ops.helpers import assert_op_and_oracle_refuse, rel_err, run_python
from trustattr import ops, reference

# Relative error ||out - ref|| / ||ref|| allowed per input dtype. bf16/fp16 inputs are converted
# exactly to float32, so every dtype but float64 accumulates in float32 alike.
TOL = {torch.float64: 1e-12, torch.float32: 2e-6, torch.bfloat16: 2e-6, torch.float16: 2e-6}


def factors(gen, n, t, d_in, d_out, dtype=torch.float32):
    a = torch.randn(n, t, d_in, generator=gen).to(dtype)
    g = torch.randn(n, t, d_out, generator=gen).to(dtype)
    return a, g


def materialized(a, g):
    return torch.einsum("nto,nti->noi", g.double(), a.double()).flatten(1)  # [N, d_out*d_in]


SHAPES = [  # N, T, d_in, d_out, ragged sizes on purpose
    (3, 17, 40, 33),
    (2, 1, 96, 64),
    (13, 5, 7, 130),
]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("shape", SHAPES)
def test_project_factored_matches_reference(dtype, shape, gen):
    a, g = factors(gen, *shape, dtype=dtype)
    out = ops.project_factored(a, g, 19, 35, 7)
    assert out.dtype == (torch.float64 if dtype == torch.float64 else torch.float32)
    assert out.shape == (shape[0], 35 * 19)
    assert rel_err(out, reference.project_factored(a, g, 19, 35, 7)) < TOL[dtype]


def test_project_factored_is_the_two_sided_sketch_of_g(gen):
    a, g = factors(gen, 4, 9, 30, 20, dtype=torch.float64)
    r_in = reference.random_matrix(30, 6, ops.derive_seed(5, 0), dtype=torch.float64)
    r_out = reference.random_matrix(20, 8, ops.derive_seed(5, 1), dtype=torch.float64)
    G = materialized(a, g).view(4, 20, 30)
    expected = (r_out.T @ G @ r_in).flatten(1)  # [N, k_out*k_in], row-major (o, i)
    assert torch.allclose(ops.project_factored(a, g, 6, 8, 5), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16])
@pytest.mark.parametrize("shape", SHAPES)
def test_project_outer_matches_reference_and_project_of_g(dtype, shape, gen):
    a, g = factors(gen, *shape, dtype=dtype)
    out = ops.project_outer(a, g, 70, 11, feature_offset=5)
    assert rel_err(out, reference.project_outer(a, g, 70, 11, 5)) < TOL[dtype]
    assert rel_err(out, ops.project(materialized(a, g), 70, 11, feature_offset=5)) < TOL[dtype]


def test_layers_with_offsets_sum_to_one_global_projection(gen):
    (a1, g1), (a2, g2) = factors(gen, 3, 6, 20, 12, torch.float64), factors(gen, 3, 6, 9, 31, torch.float64)
    total = ops.project_outer(a1, g1, 40, 3) + ops.project_outer(a2, g2, 40, 3, feature_offset=12 * 20)
    whole = torch.cat([materialized(a1, g1), materialized(a2, g2)], dim=1)
    assert torch.allclose(total, reference.project(whole, 40, 3), rtol=1e-12, atol=1e-11)


def test_derive_seed_is_documented_and_separates_indices():
    assert ops.derive_seed(0, 0) == reference.rng._signed(reference.rng._mix64_int(0))
    seeds = {ops.derive_seed(s, i) for s in (0, 1, -1, 2**62) for i in range(4)}
    assert len(seeds) == 16
    assert ops.derive_seed(42, 3) == ops.derive_seed(42, 3)


@pytest.mark.parametrize("op", ["project_factored", "project_outer"])
def test_segments_sum_rows_as_concatenated_tokens(op, gen):
    args = (9, 13, 4) if op == "project_factored" else (50, 4)
    fn, ref = getattr(ops, op), getattr(reference, op)
    a, g = factors(gen, 6, 5, 24, 18)
    segments = torch.tensor([2, 0, 2, 3, 0, 2])
    out = fn(a, g, *args, segments=segments, num_segments=5)
    assert out.shape[0] == 5
    assert torch.equal(out[1], torch.zeros_like(out[1]))  # an empty segment stays 0
    per_row = fn(a, g, *args)
    assert rel_err(out, ops.segment_sum(per_row, segments, 5)) < 2e-6
    assert rel_err(out, ref(a.double(), g.double(), *args, segments=segments, num_segments=5)) < 2e-6
    # Segment 2 = rows 0, 2, 5: the same FMA chains as one row holding their tokens in order.
    cat = fn(a[[0, 2, 5]].reshape(1, 15, 24), g[[0, 2, 5]].reshape(1, 15, 18), *args)
    assert torch.equal(out[2], cat[0])


@pytest.mark.parametrize("op", ["project_factored", "project_outer"])
def test_rows_are_bit_identical_across_batch_size_threads_and_strides(op, gen, threads):
    args = (20, 37, 1) if op == "project_factored" else (300, 1, 17)
    fn = getattr(ops, op)
    a, g = factors(gen, 8, 21, 70, 45)
    with threads(2):
        batch = fn(a, g, *args)
    with threads(1):
        for n in (0, 5):
            assert torch.equal(fn(a[n:n + 1], g[n:n + 1], *args)[0], batch[n])
        single_thread = fn(a, g, *args)
    assert torch.equal(single_thread, batch)
    # Token-major storage (strided views) and a non-unit last stride give the same bits.
    a_token_major = a.transpose(0, 1).contiguous().transpose(0, 1)
    g_every_other = torch.zeros(8, 21, 90)
    g_every_other[..., ::2] = g
    assert torch.equal(fn(a_token_major, g_every_other[..., ::2], *args), batch)
    assert torch.equal(fn(a, torch.cat([g, torch.zeros_like(g)], 2)[..., :45], *args), batch)


def test_internal_slabs_panels_and_tiles_do_not_show(gen):
    # Several 64-column panels, a d_in wider than one G tile, several slabs of samples (T = 4096
    # tokens: ~4 MB of projected float64 tokens per sample) and of output rows (> 48): same oracle, same bits.
    a, g = factors(gen, 3, 5, 50, 40, torch.float64)
    assert rel_err(ops.project_factored(a, g, 100, 70, 2), reference.project_factored(a, g, 100, 70, 2)) < 1e-12
    a, g = factors(gen, 2, 3, 7000, 3, torch.float64)
    assert rel_err(ops.project_outer(a, g, 40, 1), reference.project_outer(a, g, 40, 1)) < 1e-12
    a, g = factors(gen, 9, 4096, 8, 6, torch.float64)  # float64: a 12,288-token fp32 chain drifts past 2e-6
    segments = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1, 2])
    out = ops.project_factored(a, g, 64, 64, 3, segments, 3)
    assert rel_err(out, reference.project_factored(a, g, 64, 64, 3, segments, 3)) < 1e-12
    cat = ops.project_factored(a[[1, 4, 7]].reshape(1, 3 * 4096, 8), g[[1, 4, 7]].reshape(1, 3 * 4096, 6), 64, 64, 3)
    assert torch.equal(out[1], cat[0])
    a, g = factors(gen, 130, 4, 20, 10)
    out = ops.project_outer(a, g, 70, 4)
    assert rel_err(out, reference.project_outer(a, g, 70, 4)) < 2e-6
    assert torch.equal(out[100], ops.project_outer(a[100:101], g[100:101], 70, 4)[0])


def test_padding_tokens_contribute_nothing(gen):
    a, g = factors(gen, 2, 10, 30, 20)
    g_pad = torch.cat([g, torch.zeros(2, 4, 20)], dim=1)
    a_pad = torch.cat([a, torch.randn(2, 4, 30, generator=gen)], dim=1)
    assert torch.equal(ops.project_factored(a_pad, g_pad, 8, 8, 0), ops.project_factored(a, g, 8, 8, 0))
    assert torch.equal(ops.project_outer(a_pad, g_pad, 64, 0), ops.project_outer(a, g, 64, 0))


def test_zero_tokens_and_zero_rows_give_zeros():
    a, g = torch.zeros(3, 0, 5), torch.zeros(3, 0, 4)
    assert torch.equal(ops.project_factored(a, g, 2, 3, 0), torch.zeros(3, 6))
    assert torch.equal(ops.project_outer(a, g, 7, 0), torch.zeros(3, 7))
    assert ops.project_outer(torch.zeros(0, 2, 5), torch.zeros(0, 2, 4), 7, 0).shape == (0, 7)


def test_segment_sum_adds_rows_in_order(gen):
    x = torch.randn(7, 300, generator=gen)
    segments = torch.tensor([1, 1, 0, 3, 1, 0, 3])
    out = ops.segment_sum(x, segments, 4)
    expected = torch.stack([x[2] + x[5], x[0] + x[1] + x[4], torch.zeros(300), x[3] + x[6]])
    assert torch.equal(out, expected)
    out16 = ops.segment_sum(x.to(torch.bfloat16), segments, 4)
    assert out16.dtype == torch.float32
    assert rel_err(out16, reference.segment_sum(x.to(torch.bfloat16), segments, 4)) < 1e-6


def test_every_cpu_variant_agrees():
    code = """
        import torch
        from trustattr import ops, reference
        gen = torch.Generator().manual_seed(0)
        a, g = torch.randn(5, 19, 70, generator=gen), torch.randn(5, 19, 45, generator=gen)
        torch.save([ops.project_factored(a, g, 20, 9, 3), ops.project_outer(a, g, 70, 3, 5)], "{path}")
        print(ops.extension_info()["cpu_isa"])
    """
    results = {}
    for isa in ("avx512", "avx2", "baseline"):
        path = f"/tmp/trustattr_variant_{os.getpid()}_{isa}.pt"
        forced = {"TRUSTATTR_CPU_ISA": isa} if isa != "avx512" else {}
        run = run_python(code.format(path=path), timeout=120, **forced)
        assert run.returncode == 0, run.stderr
        results[run.stdout.strip()] = torch.load(path)
        os.remove(path)
    assert "baseline" in results
    variants = list(results.values())
    for other in variants[1:]:
        for x, y in zip(variants[0], other):
            assert rel_err(x, y) < 2e-6
    if "avx512" in results and "avx2" in results:  # the same FMA chains, lane for lane
        assert all(torch.equal(x, y) for x, y in zip(results["avx512"], results["avx2"]))


def test_opcheck(gen):
    a, g = factors(gen, 3, 4, 10, 6)
    seg = torch.tensor([0, 1, 0])
    torch.library.opcheck(torch.ops.trustattr.project_factored.default, (a, g, 3, 5, 1))
    torch.library.opcheck(torch.ops.trustattr.project_factored.default, (a, g, 3, 5, 1, seg, 2))
    torch.library.opcheck(torch.ops.trustattr.project_outer.default, (a, g, 9, 1, 4))
    torch.library.opcheck(torch.ops.trustattr.project_outer.default, (a, g, 9, 1, 0, seg, 2))
    torch.library.opcheck(torch.ops.trustattr.segment_sum.default, (torch.randn(3, 5, generator=gen), seg, 2))


def test_torch_compile_fullgraph(gen):
    def f(a, g, seg):
        return ops.project_factored(a * 2, g, 4, 4, 0, seg, 2).sum(1) + ops.project_outer(a, g, 8, 0, 0, seg, 2).sum(1)

    a, g = factors(gen, 4, 3, 12, 10)
    seg = torch.tensor([1, 0, 1, 0])
    compiled = torch.compile(f, fullgraph=True, backend="aot_eager")
    assert torch.allclose(compiled(a, g, seg), f(a, g, seg), rtol=1e-6)


A, G = torch.randn(2, 3, 4), torch.randn(2, 3, 5)
S2 = torch.tensor([0, 1])
BAD_INPUTS = [  # (op, args, error, message): the compiled op and the reference raise the same
    ("project_factored", (A[0], G, 2, 2, 0), ValueError, r"project_factored: argument 'a' must be a 3-D tensor \[N, T, d_in\], got a 2-D tensor of shape \[3, 4\]"),
    ("project_outer", (A, G[:1], 2, 0), ValueError, r"project_outer: argument 'g' must have the same number of rows N as 'a' \(2\), got shape \[1, 3, 5\]"),
    ("project_outer", (A, G[:, :2], 2, 0), ValueError, r"argument 'g' must have the same number of tokens T as 'a' \(3\)"),
    ("project_outer", (A[..., :0], G, 2, 0), ValueError, r"argument 'a' must have d_in >= 1 features, got shape \[2, 3, 0\]"),
    ("project_factored", (A, G, 0, 2, 0), ValueError, r"project_factored: argument 'k_in' must be >= 1, got 0"),
    ("project_factored", (A, G, 2, -1, 0), ValueError, r"argument 'k_out' must be >= 1, got -1"),
    ("project_outer", (A, G, 0, 0), ValueError, r"project_outer: argument 'k' must be >= 1, got 0"),
    ("project_outer", (A, G, 4, 0, -3), ValueError, r"argument 'feature_offset' must be >= 0, got -3"),
    ("project_outer", (A, G.to("meta"), 4, 0), ValueError, r"project_outer: arguments 'a' and 'g' must be on the same device, got cpu and meta"),
    ("project_factored", (A.int(), G.int(), 2, 2, 0), TypeError, r"argument 'a' must be float32, float64, bfloat16 or float16, got (Int|torch.int32)"),
    ("project_factored", (A, G.double(), 2, 2, 0), TypeError, r"arguments 'a' and 'g' must have the same dtype, got (Float|torch.float32) and (Double|torch.float64)"),
    ("project_factored", (A, G, 2, 2, 0, None, 3), ValueError, r"argument 'num_segments' must be None when 'segments' is None, got 3"),
    ("project_outer", (A, G, 2, 0, 0, S2.double(), 2), TypeError, r"argument 'segments' must be an int64 tensor, got (Double|torch.float64)"),
    ("project_outer", (A, G, 2, 0, 0, torch.tensor([0, 1, 1]), 2), ValueError, r"argument 'segments' must have shape \[2\] \(one id per row\), got shape \[3\]"),
    ("project_outer", (A, G, 2, 0, 0, torch.tensor([0, 2]), 2), ValueError, r"argument 'segments' values must lie in \[0, num_segments\) = \[0, 2\), got 2 at row 1"),
    ("project_factored", (A, G, 2, 2, 0, torch.tensor([-1, 0]), 2), ValueError, r"values must lie in \[0, num_segments\) = \[0, 2\), got -1 at row 0"),
    ("segment_sum", (torch.randn(3, 2), torch.tensor([0, 1, 1]), 0), ValueError, r"segment_sum: argument 'num_segments' must be >= 1, got 0"),
    ("segment_sum", (torch.randn(3), torch.tensor([0, 1, 1]), 2), ValueError, r"segment_sum: argument 'x' must be a 2-D tensor \[R, k\]"),
]


@pytest.mark.parametrize("op,args,error,message", BAD_INPUTS)
def test_bad_inputs_name_the_argument(op, args, error, message):
    assert_op_and_oracle_refuse(op, args, error, message)


def test_segments_need_num_segments():
    with pytest.raises(ValueError, match=r"project_factored: argument 'num_segments' is required with 'segments'"):
        ops.project_factored(A, G, 2, 2, 0, S2)
