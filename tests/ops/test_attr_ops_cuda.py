"""The CUDA kernels of the issue-5 ops (skipped without a GPU): project_factored, project_outer,
segment_sum, score, topk_score, datainf_scores.

Each op is checked against the float64 reference and against the CPU kernels, with the per-dtype
accuracy the CUDA paths document (csrc/cuda/grad_sketch_cuda.cu, score.cu, datainf.cu): the random
factors are bit-identical on both devices, top-k is the exact stable order of the CUDA scores,
segment_sum adds rows in the CPU's order (identical bits), every op is deterministic run to run.
Budget: about 30 s on an H100 (most of it torch.compile and opcheck).
"""

from __future__ import annotations

import pytest
import torch

from tests.ops.helpers import rel_err
from trustattr import ops, reference

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

CUDA = torch.device("cuda")
F64, F32, BF16, F16 = torch.float64, torch.float32, torch.bfloat16, torch.float16
# ||out - ref|| / ||ref|| per input dtype (ref: the float64 oracle on the same, already-rounded input).
# project_factored: the token projections are `project` (fp32 input split into bf16 hi + lo on tensor
# cores: ~5e-6; 16-bit inputs exact), then fp32 sums of per-token products.
FACTORED_TOL = {F64: 1e-12, F32: 3e-5, BF16: 5e-6, F16: 5e-6}
# project_outer: G tiles summed in fp32 (exact inputs), then projected as fp32 (hi + lo split).
OUTER_TOL = {F64: 1e-12, F32: 3e-5, BF16: 3e-5, F16: 3e-5}
# score: fp32 fused multiply-add chains of 32 columns, chunk sums added in order.
SCORE_TOL = {F64: 1e-12, F32: 2e-6, BF16: 2e-6, F16: 2e-6}
CPU_TOL = {F64: 1e-12, F32: 2e-6, BF16: 2e-6, F16: 2e-6}  # the CPU kernels' bounds (tests/ops/test_*.py)
OPS = ["project_factored", "project_outer", "segment_sum", "score", "topk_score", "datainf_scores"]


def randn(*shape: int, dtype: torch.dtype = F32, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)).to(dtype).to(CUDA)


def factors(n, t, d_in, d_out, dtype=F32, seed=0):
    return randn(n, t, d_in, dtype=dtype, seed=seed), randn(n, t, d_out, dtype=dtype, seed=seed + 1)


def test_every_issue5_op_has_a_cuda_kernel():
    assert ops.EXTENSION_LOADED, ops.EXTENSION_ERROR
    for name in OPS:
        assert torch._C._dispatch_has_kernel_for_dispatch_key(f"trustattr::{name}", "CUDA"), name


@pytest.mark.parametrize("seed", [0, 7, -3, 2**62])
def test_random_factors_are_bit_identical_on_both_devices(seed):
    d_in, d_out, k_in, k_out = 37, 21, 9, 70
    for index, (d, k) in enumerate([(d_in, k_in), (d_out, k_out)]):
        derived = ops.derive_seed(seed, index)
        on_gpu = ops.random_matrix(d, k, derived, device="cuda", dtype=F64)
        assert torch.equal(on_gpu.cpu(), ops.random_matrix(d, k, derived, dtype=F64))
    # One-hot factors read the CUDA path's R_in / R_out back: out[n] = R_out[n % d_out] (x) R_in[n].
    a = torch.eye(d_in).unsqueeze(1).to(CUDA)  # [d_in, 1, d_in]
    g = torch.eye(d_out)[torch.arange(d_in) % d_out].unsqueeze(1).to(CUDA)  # [d_in, 1, d_out]
    out = ops.project_factored(a, g, k_in, k_out, seed).cpu()
    r_in = reference.random_matrix(d_in, k_in, ops.derive_seed(seed, 0), dtype=F64)
    r_out = reference.random_matrix(d_out, k_out, ops.derive_seed(seed, 1), dtype=F64)
    expected = torch.einsum("no,ni->noi", r_out[torch.arange(d_in) % d_out], r_in).flatten(1)
    assert torch.equal(out.sign(), expected.sign().float())
    assert torch.allclose(out.double(), expected, rtol=1e-6, atol=0)


SHAPES = [(3, 17, 40, 33), (2, 1, 96, 64), (13, 5, 7, 130), (1, 40, 300, 70)]  # N, T, d_in, d_out


@pytest.mark.parametrize("dtype", list(FACTORED_TOL))
@pytest.mark.parametrize("shape", SHAPES)
def test_project_factored_matches_reference(dtype, shape):
    a, g = factors(*shape, dtype=dtype, seed=sum(shape))
    out = ops.project_factored(a, g, 19, 35, 7)
    assert out.device.type == "cuda" and out.shape == (shape[0], 35 * 19)
    assert out.dtype == (F64 if dtype == F64 else F32)
    assert rel_err(out, reference.project_factored(a.cpu(), g.cpu(), 19, 35, 7)) < FACTORED_TOL[dtype]


@pytest.mark.parametrize("dtype", list(OUTER_TOL))
@pytest.mark.parametrize("shape", SHAPES)
def test_project_outer_matches_reference_and_project_of_g(dtype, shape):
    a, g = factors(*shape, dtype=dtype, seed=sum(shape) + 1)
    out = ops.project_outer(a, g, 70, 11, feature_offset=5)
    assert out.device.type == "cuda" and out.shape == (shape[0], 70)
    ref = reference.project_outer(a.cpu(), g.cpu(), 70, 11, 5)
    assert rel_err(out, ref) < OUTER_TOL[dtype]
    G = torch.einsum("nto,nti->noi", g.double(), a.double()).flatten(1)  # [N, d_out*d_in] on the GPU
    assert rel_err(out, ops.project(G, 70, 11, feature_offset=5)) < OUTER_TOL[dtype]


def test_project_outer_in_several_tiles_of_g():
    """64 rows x 2048 inputs: G is formed 256 rows of o at a time (2^25 values), 300 rows = 2 tiles."""
    a, g = factors(64, 3, 2048, 300, seed=3)
    out = ops.project_outer(a, g, 32, 5, feature_offset=9)
    assert rel_err(out, reference.project_outer(a.cpu(), g.cpu(), 32, 5, 9)) < OUTER_TOL[F32]


@pytest.mark.parametrize("op", ["project_factored", "project_outer"])
def test_segments_sum_rows_as_concatenated_tokens(op):
    args = (9, 13, 4) if op == "project_factored" else (50, 4)
    fn, ref = getattr(ops, op), getattr(reference, op)
    a, g = factors(6, 5, 24, 18, seed=4)
    segments = torch.tensor([2, 0, 2, 3, 0, 2], device=CUDA)
    out = fn(a, g, *args, segments=segments, num_segments=5)
    assert out.shape[0] == 5
    assert torch.equal(out[1], torch.zeros_like(out[1]))  # an empty segment stays 0
    tol = FACTORED_TOL[F32] if op == "project_factored" else OUTER_TOL[F32]
    assert rel_err(out, ops.segment_sum(fn(a, g, *args), segments, 5)) < tol
    assert rel_err(out, ref(a.cpu(), g.cpu(), *args, segments=segments.cpu(), num_segments=5)) < tol
    cat = fn(a[[0, 2, 5]].reshape(1, 15, 24), g[[0, 2, 5]].reshape(1, 15, 18), *args)
    assert rel_err(out[2:3], cat) < tol


@pytest.mark.parametrize("op", ["project_factored", "project_outer"])
def test_layouts_padding_and_determinism(op):
    args = (20, 37, 1) if op == "project_factored" else (300, 1, 17)
    fn = getattr(ops, op)
    a, g = factors(8, 21, 70, 45, seed=5)
    base = fn(a, g, *args)
    assert torch.equal(fn(a, g, *args), base)  # same inputs, same bits
    token_major = a.transpose(0, 1).contiguous().transpose(0, 1)
    wide = torch.zeros(8, 21, 90, device=CUDA)
    wide[..., ::2] = g
    assert rel_err(fn(token_major, wide[..., ::2], *args), base) < 1e-6
    a_pad = torch.cat([a, randn(8, 4, 70, seed=6)], 1)  # padding tokens: g == 0
    g_pad = torch.cat([g, torch.zeros(8, 4, 45, device=CUDA)], 1)
    assert rel_err(fn(a_pad, g_pad, *args), base) < 1e-6
    assert torch.equal(fn(a[:, :0], g[:, :0], *args), torch.zeros_like(base))


def test_gradient_sketches_agree_with_the_cpu_kernels():
    for dtype in (F32, BF16, F64):
        a, g = factors(5, 19, 70, 45, dtype=dtype, seed=7)
        on_cpu = ops.project_factored(a.cpu(), g.cpu(), 20, 9, 3)
        assert rel_err(ops.project_factored(a, g, 20, 9, 3), on_cpu) < FACTORED_TOL[dtype] + CPU_TOL[dtype]
        on_cpu = ops.project_outer(a.cpu(), g.cpu(), 70, 3, 5)
        assert rel_err(ops.project_outer(a, g, 70, 3, 5), on_cpu) < OUTER_TOL[dtype] + CPU_TOL[dtype]


def test_segment_sum_adds_rows_in_the_cpus_order():
    x = randn(7, 300, seed=8)
    segments = torch.tensor([1, 1, 0, 3, 1, 0, 3], device=CUDA)
    out = ops.segment_sum(x, segments, 4)
    expected = torch.stack([x[2] + x[5], x[0] + x[1] + x[4], torch.zeros(300, device=CUDA), x[3] + x[6]])
    assert torch.equal(out, expected)
    for dtype in (F32, BF16, F16, F64):
        big = randn(5000, 77, dtype=dtype, seed=9)[:, ::2]  # strided columns
        ids = torch.randint(0, 900, (5000,), generator=torch.Generator().manual_seed(1)).to(CUDA)
        on_gpu = ops.segment_sum(big, ids, 1000)
        assert on_gpu.dtype == (F64 if dtype == F64 else F32)
        assert torch.equal(on_gpu.cpu(), ops.segment_sum(big.cpu(), ids.cpu(), 1000))


@pytest.mark.parametrize("dtype", list(SCORE_TOL))
@pytest.mark.parametrize("normalize", [False, True])
@pytest.mark.parametrize("N,M,k", [(130, 3, 77), (200, 11, 16), (5, 1, 1), (300, 40, 100)])
def test_score_matches_reference(dtype, normalize, N, M, k):
    train = randn(N, k, dtype=dtype, seed=N + M)
    query = randn(M, k, dtype=dtype, seed=N + M + 1)
    train[1 % N] = 0  # a zero row: cosine 0, not NaN
    out = ops.score(train, query, normalize)
    assert out.device.type == "cuda" and out.dtype == (F64 if dtype == F64 else F32)
    assert rel_err(out, reference.score(train.cpu(), query.cpu(), normalize)) < SCORE_TOL[dtype]
    assert rel_err(out, ops.score(train.cpu(), query.cpu(), normalize)) < SCORE_TOL[dtype] + CPU_TOL[dtype]
    if normalize:
        assert torch.equal(out[1 % N], torch.zeros(M, dtype=out.dtype, device=CUDA))
        assert out.abs().max() <= 1 + 1e-6


def test_score_mixed_dtypes_and_strided_train():
    train = randn(40, 33, dtype=F16, seed=10)
    query = randn(2, 33, seed=11)
    assert ops.score(train, query).dtype == F32
    assert ops.score(train, query.double()).dtype == F64
    assert rel_err(ops.score(train, query.double()), reference.score(train.cpu(), query.cpu().double())) < 1e-12
    wide = randn(200, 100, seed=12)
    q = randn(3, 60, seed=13)
    assert torch.equal(ops.score(wide[:, 20:80], q), ops.score(wide[:, 20:80].contiguous(), q))
    assert torch.equal(ops.score(wide.T.contiguous().T[:, :60], q), ops.score(wide[:, :60].contiguous(), q))


@pytest.mark.parametrize("largest", [True, False])
@pytest.mark.parametrize("normalize", [False, True])
def test_topk_is_the_stable_sort_of_score(largest, normalize):
    train = randn(1000, 40, seed=14)
    train[700:720] = train[3]  # exact ties: smaller index first
    query = randn(5, 40, seed=15)
    values, indices = ops.topk_score(train, query, 37, normalize, largest)
    scores = ops.score(train, query, normalize).T  # [M, N], the same dot sequence
    expected_values, expected_indices = torch.sort(scores, dim=1, descending=largest, stable=True)
    assert torch.equal(values, expected_values[:, :37])
    assert torch.equal(indices, expected_indices[:, :37])
    cpu_values, _ = ops.topk_score(train.cpu(), query.cpu(), 37, normalize, largest)
    assert torch.allclose(values.cpu(), cpu_values, rtol=1e-5, atol=1e-5)


def test_topk_merges_chunks_of_rows():
    """4096 queries: rows are streamed 4096 at a time, so 5000 rows take two merges."""
    train = randn(5000, 8, seed=16)
    train[4095] = train[10]
    train[4500] = train[10]  # ties inside and across the chunk boundary
    query = randn(4096, 8, seed=17)
    values, indices = ops.topk_score(train, query, 25)
    expected_values, expected_indices = torch.sort(ops.score(train, query).T, dim=1, descending=True, stable=True)
    assert torch.equal(values, expected_values[:, :25])
    assert torch.equal(indices, expected_indices[:, :25])


def test_topk_ties_nan_and_topk_equal_to_n():
    train = torch.tensor([[1.0], [3.0], [float("nan")], [3.0], [0.0], [float("nan")]], device=CUDA)
    query = torch.ones(1, 1, device=CUDA)
    values, indices = ops.topk_score(train, query, 6)
    assert indices.tolist() == [[2, 5, 1, 3, 0, 4]]  # NaN first (as torch.sort), ties by index
    assert torch.equal(values[0, 2:], torch.tensor([3.0, 3.0, 1.0, 0.0], device=CUDA))
    values, indices = ops.topk_score(train, query, 3, largest=False)
    assert indices.tolist() == [[4, 0, 1]]


@pytest.mark.parametrize("damping,blocks", [(None, None), (0.5, None), (None, [0, 4, 9, 16]), (0.05, [0, 1, 16])])
def test_datainf_matches_the_explicit_inverse(damping, blocks):
    train = randn(30, 16, dtype=F64, seed=18)
    train[:, :4] *= 5
    query = randn(16, dtype=F64, seed=19)
    out = ops.datainf_scores(train, query, damping, blocks)
    assert out.device.type == "cuda" and out.dtype == F64
    assert rel_err(out, reference.datainf_scores_bruteforce(train.cpu(), query.cpu(), damping, blocks)) < 1e-10
    assert rel_err(out, reference.datainf_scores(train.cpu(), query.cpu(), damping, blocks)) < 1e-12


@pytest.mark.parametrize("dtype", [F32, BF16])
def test_datainf_low_precision_chunks_and_determinism(dtype):
    train = randn(9000, 48, dtype=dtype, seed=20)  # three 4096-row chunks
    train[:, 40:] = 0  # an all-zero block contributes nothing
    query = randn(48, dtype=dtype, seed=21)
    out = ops.datainf_scores(train, query, None, [0, 20, 40, 48])
    assert torch.equal(ops.datainf_scores(train, query, None, [0, 20, 40, 48]), out)
    assert torch.isfinite(out).all()
    assert rel_err(out, reference.datainf_scores(train.cpu(), query.cpu(), None, [0, 20, 40, 48])) < 1e-5
    on_cpu = ops.datainf_scores(train.cpu(), query.cpu(), None, [0, 20, 40, 48])
    assert rel_err(out, on_cpu) < 2e-5


def test_opcheck_on_cuda():
    a, g = factors(3, 4, 10, 6, seed=22)
    seg = torch.tensor([0, 1, 0], device=CUDA)
    train, query = randn(20, 9, seed=23), randn(3, 9, seed=24)
    cases = [
        (torch.ops.trustattr.project_factored.default, (a, g, 3, 5, 1)),
        (torch.ops.trustattr.project_factored.default, (a, g, 3, 5, 1, seg, 2)),
        (torch.ops.trustattr.project_outer.default, (a, g, 9, 1, 4)),
        (torch.ops.trustattr.project_outer.default, (a, g, 9, 1, 0, seg, 2)),
        (torch.ops.trustattr.segment_sum.default, (randn(3, 5, seed=25), seg, 2)),
        (torch.ops.trustattr.score.default, (train, query, True)),
        (torch.ops.trustattr.topk_score.default, (train, query, 4, False, False)),
        (torch.ops.trustattr.datainf_scores.default, (train, query[0], None, [0, 4, 9])),
        (torch.ops.trustattr.datainf_scores.default, (train, query[0], 0.3)),
    ]
    for op, args in cases:
        torch.library.opcheck(op, args)


def test_torch_compile_fullgraph_on_cuda():
    def f(a, g, seg, train, query):
        factored = ops.project_factored(a * 2, g, 4, 4, 0, seg, 2)
        sketches = factored.sum() + ops.project_outer(a, g, 8, 0, 0, seg, 2).sum()
        values, indices = ops.topk_score(train * 2, query, 5, normalize=True)
        scores = ops.score(train, query).sum() + ops.datainf_scores(train, query[0], None, [0, 3, 9]).sum()
        return sketches + values.sum() + scores, indices

    a, g = factors(4, 3, 12, 10, seed=26)
    seg = torch.tensor([1, 0, 1, 0], device=CUDA)
    train, query = randn(30, 9, seed=27), randn(2, 9, seed=28)
    compiled = torch.compile(f, fullgraph=True, backend="aot_eager")
    (value, indices), (expected, expected_indices) = compiled(a, g, seg, train, query), f(a, g, seg, train, query)
    assert torch.allclose(value, expected, rtol=1e-5)
    assert torch.equal(indices, expected_indices)


A, G = torch.ones(2, 3, 4), torch.ones(2, 3, 5)  # CPU tensors; each call moves one side to the GPU
X, S2, T2, Q2 = torch.ones(2, 4), torch.tensor([0, 1]), torch.ones(6, 4), torch.ones(2, 4)
GPU, SAME = r"cuda:\d+", "must be on the same device, got"
DATAINF = "datainf_scores: arguments 'train' and 'query'"
MIXED_DEVICES = [  # (call, message): the first argument on one device, the second on the other
    (lambda c: ops.project_factored(A.to(c), G, 2, 2, 0), rf"'a' and 'g' {SAME} {GPU} and cpu"),
    (lambda c: ops.project_outer(A, G.to(c), 4, 0), rf"'a' and 'g' {SAME} cpu and {GPU}"),
    (lambda c: ops.project_outer(A.to(c), G.to(c), 4, 0, 0, S2, 2), rf"'a' and 'segments' {SAME} {GPU} and cpu"),
    (lambda c: ops.segment_sum(X.to(c), S2, 2), rf"segment_sum: arguments 'x' and 'segments' {SAME} {GPU} and cpu"),
    (lambda c: ops.score(T2.to(c), Q2), rf"score: arguments 'train' and 'query' {SAME} {GPU} and cpu"),
    (lambda c: ops.topk_score(T2, Q2.to(c), 2), rf"topk_score: arguments 'train' and 'query' {SAME} cpu and {GPU}"),
    (lambda c: ops.datainf_scores(T2.to(c), Q2[0]), rf"{DATAINF} {SAME} {GPU} and cpu"),
]


@pytest.mark.parametrize("call,message", MIXED_DEVICES)
def test_mismatched_devices_name_both_arguments(call, message):
    with pytest.raises(ValueError, match=message):
        call(CUDA)


@pytest.mark.parametrize("ids,got", [([0, 2], r"got 2 at row 1"), ([-1, 0], r"got -1 at row 0")])
def test_bad_segment_ids_are_caught_on_the_device(ids, got):
    a, g = factors(2, 3, 4, 5, seed=33)
    ids = torch.tensor(ids, device=CUDA)
    message = r"argument 'segments' values must lie in \[0, num_segments\) = \[0, 2\), " + got
    for call in (lambda: ops.project_factored(a, g, 2, 2, 0, ids, 2), lambda: ops.project_outer(a, g, 3, 0, 0, ids, 2),
                 lambda: ops.segment_sum(a[:, 0], ids, 2)):
        with pytest.raises(ValueError, match=message):
            call()
