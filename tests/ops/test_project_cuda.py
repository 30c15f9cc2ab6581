"""The CUDA kernels of project / project_t / random_matrix (skipped without a GPU).

Checked against the float64 reference and against the CPU kernels: the random matrix is
bit-identical on both devices; results agree within the documented per-dtype accuracy of the
CUDA paths (csrc/cuda/*.cu): rademacher on tensor cores (fp32 input split into bf16 hi + lo),
gaussian and float64 on FMA units, sjlt by shared-memory scatter and gather.
"""

from __future__ import annotations

import pytest
import torch

import trustattr
from tests.ops.helpers import rel_err
from trustattr import ops, reference

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

KINDS = ["rademacher", "gaussian", "sjlt"]
# ||out - ref|| / ||ref|| allowed per input dtype (ref = float64 reference on the same, already-rounded
# input). float32: bf16 hi + lo split on tensor cores loses at most 2^-16 of each element (~5e-6
# typical); bf16/fp16 inputs are exact in the MMA and accumulate in float32; float64 stays float64.
TOLERANCE = {torch.float64: 1e-12, torch.float32: 3e-5, torch.bfloat16: 5e-6, torch.float16: 5e-6}
# The CPU kernels' bounds (tests/ops/test_project.py): float32 accumulation, or float64.
CPU_TOLERANCE = {torch.float64: 1e-12, torch.float32: 2e-6, torch.bfloat16: 2e-6}
# (N, D, k): every row tile variant (16/32/64/128 rows, two row tiles), odd sizes, split reductions.
SHAPES = [(1, 1, 1), (3, 7, 5), (17, 100, 70), (40, 1000, 129), (130, 4100, 33), (2, 70000, 64), (5, 3000, 1000)]
CUDA = torch.device("cuda")


def nnz_for(kind: str, k: int) -> int:
    return 2 if kind == "sjlt" and k >= 2 else 1


def randn(*shape: int, dtype: torch.dtype = torch.float32, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g).to(dtype).to(CUDA)


def test_the_extension_has_cuda_kernels():
    assert ops.EXTENSION_LOADED, ops.EXTENSION_ERROR
    assert ops.extension_info()["cuda_kernels"] is True  # built without CUDA would mean the reference runs


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("D,k,offset", [(1, 1, 0), (100, 70, 0), (33, 5, 1000), (257, 129, 7), (64, 200, 2**40)])
def test_random_matrix_is_bit_identical_on_cpu_and_cuda(kind, D, k, offset):
    nnz = 3 if kind == "sjlt" and k >= 3 else 1
    for dtype in (torch.float32, torch.float64):
        got = ops.random_matrix(D, k, 42, kind, offset, nnz, dtype=dtype, device="cuda")
        assert got.device.type == "cuda" and got.dtype == dtype and got.shape == (D, k)
        assert torch.equal(got.cpu(), ops.random_matrix(D, k, 42, kind, offset, nnz, dtype=dtype))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype", list(TOLERANCE))
@pytest.mark.parametrize("N,D,k", SHAPES)
def test_project_matches_float64_reference(kind, dtype, N, D, k):
    x = randn(N, D, dtype=dtype, seed=N + D + k)
    out = ops.project(x, k, 11, kind, 5, nnz_for(kind, k))
    assert out.device.type == "cuda" and out.shape == (N, k)
    assert out.dtype == (torch.float64 if dtype == torch.float64 else torch.float32)
    ref = reference.project(x.double(), k, 11, kind, 5, nnz_for(kind, k))
    assert rel_err(out, ref) < TOLERANCE[dtype], f"{kind} {dtype} N={N} D={D} k={k}"


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype", list(TOLERANCE))
@pytest.mark.parametrize("N,D,k", SHAPES)
def test_project_t_matches_float64_reference(kind, dtype, N, D, k):
    y = randn(N, k, dtype=dtype, seed=N + D + k + 1)
    out = ops.project_t(y, D, 3, kind, 9, nnz_for(kind, k))
    assert out.device.type == "cuda" and out.shape == (N, D)
    ref = reference.project_t(y.double(), D, 3, kind, 9, nnz_for(kind, k))
    assert rel_err(out, ref) < TOLERANCE[dtype], f"{kind} {dtype} N={N} D={D} k={k}"


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64])
def test_cuda_agrees_with_the_cpu_kernels(kind, dtype):
    x = randn(37, 9000, dtype=dtype, seed=5)
    on_cpu = ops.project(x.cpu(), 300, 5, kind, 0, nnz_for(kind, 300))
    on_gpu = ops.project(x, 300, 5, kind, 0, nnz_for(kind, 300))
    assert rel_err(on_gpu, on_cpu.double()) < TOLERANCE[dtype] + CPU_TOLERANCE[dtype]
    y = randn(37, 300, dtype=dtype, seed=6)
    back_cpu = ops.project_t(y.cpu(), 9000, 5, kind, 0, nnz_for(kind, 300))
    back_gpu = ops.project_t(y, 9000, 5, kind, 0, nnz_for(kind, 300))
    if kind == "sjlt":  # a gather summing the same +-y values in the same order: identical
        assert torch.equal(back_gpu.cpu(), back_cpu)
    else:
        assert rel_err(back_gpu, back_cpu.double()) < TOLERANCE[dtype] + CPU_TOLERANCE[dtype]


@pytest.mark.parametrize("kind", KINDS)
def test_strided_and_misaligned_inputs(kind):
    """Column strides != 1 and rows that are not 16-byte aligned take the element-wise load path."""
    base = randn(700, 45, seed=7)
    views = {
        "transposed": base.T,  # [45, 700], column stride 45
        "offset": randn(45, 701, seed=8)[:, 1:],  # unit stride, rows start at odd addresses
        "every_other": randn(45, 1400, seed=9)[:, ::2],
    }
    for name, x in views.items():
        want = reference.project(x.double(), 50, 1, kind)
        assert rel_err(ops.project(x, 50, 1, kind), want) < TOLERANCE[torch.float32], name
        assert rel_err(ops.project(x.contiguous(), 50, 1, kind), want) < TOLERANCE[torch.float32], name
    y = randn(9, 100, seed=10)[:, ::2]  # [9, 50]
    want_t = reference.project_t(y.double(), 77, 1, kind)
    assert rel_err(ops.project_t(y, 77, 1, kind), want_t) < TOLERANCE[torch.float32]


@pytest.mark.parametrize("kind", ["rademacher", "gaussian"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_dense_kinds_are_deterministic(kind, dtype):
    x = randn(70, 20000, dtype=dtype, seed=11)
    y = randn(70, 500, dtype=dtype, seed=12)
    assert torch.equal(ops.project(x, 500, 2, kind), ops.project(x, 500, 2, kind))
    assert torch.equal(ops.project_t(y, 20000, 2, kind), ops.project_t(y, 20000, 2, kind))


@pytest.mark.parametrize("kind", KINDS)
def test_empty_batch_and_pieces_with_offsets(kind):
    assert ops.project(randn(0, 30), 8, 1, kind).shape == (0, 8)
    x = randn(6, 5000, dtype=torch.float64, seed=13)
    whole = ops.project(x, 96, 8, kind, 100)
    cuts = [0, 1, 1700, 1701, 4096, 5000]
    parts = sum(ops.project(x[:, a:b], 96, 8, kind, 100 + a) for a, b in zip(cuts, cuts[1:]))
    assert torch.allclose(parts, whole, rtol=0, atol=1e-12)


@pytest.mark.parametrize("kind", KINDS)
def test_opcheck_on_cuda(kind):
    x = randn(5, 37, seed=14).requires_grad_()
    torch.library.opcheck(torch.ops.trustattr.project.default, (x, 11, 3, kind, 2, 1))
    y = randn(4, 11, seed=15).requires_grad_()
    torch.library.opcheck(torch.ops.trustattr.project_t.default, (y, 37, 3, kind, 2, 1))
    torch.library.opcheck(
        torch.ops.trustattr.random_matrix.default, (9, 6, 3, kind), {"dtype": torch.float64, "device": CUDA}
    )


def test_backward_and_compile_on_cuda():
    x = randn(4, 50, seed=16).requires_grad_()
    w = randn(4, 16, seed=17)
    (trustattr.project(x, 16, 2) * w).sum().backward()
    assert x.grad.device.type == "cuda"
    assert torch.allclose(x.grad, trustattr.project_t(w, 50, 2), atol=1e-5)

    def f(t):
        return trustattr.project(torch.relu(t), 24, 9).square().sum(1)

    z = randn(8, 300, seed=18)
    compiled = torch.compile(f, fullgraph=True, backend="aot_eager")
    assert torch.allclose(compiled(z), f(z), rtol=1e-6)


BAD_INPUTS = [
    (lambda x: trustattr.project(x, 0, 0), ValueError, r"project: argument 'k' must be >= 1, got 0"),
    (lambda x: trustattr.project(x, 4, 0, "hadamard"), ValueError, r"argument 'kind' must be one of"),
    (lambda x: trustattr.project(x, 4, 0, "sjlt", 0, 5), ValueError, r"argument 'nnz' must be <= k \(4\)"),
    (lambda x: trustattr.project(x.int(), 4, 0), TypeError, r"argument 'x' must be float32, float64, bfloat16"),
    (lambda x: trustattr.project_t(x, 0, 0), ValueError, r"project_t: argument 'D' must be >= 1, got 0"),
]


@pytest.mark.parametrize("call,error,message", BAD_INPUTS)
def test_bad_inputs_name_the_argument_on_cuda(call, error, message):
    with pytest.raises(error, match=message):
        call(randn(2, 3))


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["rademacher", "sjlt"])
def test_rows_times_features_beyond_2_to_32(kind):
    """N*D > 2^32 on the GPU (8.6 GB of bf16 input, 17 GB of project_t output)."""
    free, _ = torch.cuda.mem_get_info()
    if free < 30 * 2**30:
        pytest.skip(f"needs 30 GiB of free GPU memory, {free / 2**30:.1f} GiB free")
    D = 2**31 + 64
    x = torch.zeros(2, D, dtype=torch.bfloat16, device=CUDA)
    x[0, 3] = 2.0
    x[1, D - 5 :] = 1.0
    out = ops.project(x, 16, 1, kind)
    del x
    tail = reference.random_matrix(5, 16, 1, kind, D - 5, dtype=torch.float64)
    assert torch.allclose(out[1].double().cpu(), tail.sum(0), atol=1e-6)
    head = reference.random_matrix(1, 16, 1, kind, 3, dtype=torch.float64)[0]
    assert torch.allclose(out[0].double().cpu(), 2 * head, atol=1e-6)
    y = randn(2, 16, seed=19)
    back = ops.project_t(y, D, 1, kind)
    assert torch.allclose(back[:, D - 5 :].double().cpu(), y.double().cpu() @ tail.T, atol=1e-5)
