"""The op contract around project/project_t/random_matrix: schemas, autograd, torch.func,
torch.compile, opcheck, bad-input errors, the pure-PyTorch fallback and every CPU variant."""

from __future__ import annotations

import pytest
import torch

import trustattr
from tests.ops.helpers import run_python
from trustattr import ops, reference


def test_compiled_schemas_match_the_python_contract():
    assert ops.EXTENSION_LOADED, ops.EXTENSION_ERROR
    for name, schema in ops.SCHEMAS.items():
        assert str(getattr(torch.ops.trustattr, name).default._schema) == "trustattr::" + schema


@pytest.mark.parametrize("kind", ["rademacher", "gaussian", "sjlt"])
def test_opcheck(kind, gen):
    x = torch.randn(5, 37, generator=gen, requires_grad=True)
    torch.library.opcheck(torch.ops.trustattr.project.default, (x, 11, 3, kind, 2, 1))
    y = torch.randn(4, 11, generator=gen, requires_grad=True)
    torch.library.opcheck(torch.ops.trustattr.project_t.default, (y, 37, 3, kind, 2, 1))
    torch.library.opcheck(torch.ops.trustattr.random_matrix.default, (9, 6, 3, kind), {"dtype": torch.float64})


def test_gradcheck_through_both_ops(gen):
    x = torch.randn(3, 20, generator=gen, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: trustattr.project(t, 7, 1), (x,))
    assert torch.autograd.gradgradcheck(lambda t: trustattr.project(t, 7, 1, "gaussian"), (x,))
    y = torch.randn(3, 7, generator=gen, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: trustattr.project_t(t, 20, 1, "sjlt", 0, 2), (y,))
    # The raw op is differentiable too (formula registered on torch.ops.trustattr.project).
    assert torch.autograd.gradcheck(lambda t: torch.ops.trustattr.project(t, 7, 1), (x,))


def test_backward_is_the_transposed_sketch(gen):
    x = torch.randn(4, 50, generator=gen, requires_grad=True)
    w = torch.randn(4, 16, generator=gen)
    (trustattr.project(x, 16, 2) * w).sum().backward()
    assert torch.allclose(x.grad, trustattr.project_t(w, 50, 2), atol=1e-6)


def test_bf16_gradient_comes_back_in_the_input_dtype(gen):
    x = torch.randn(2, 30, generator=gen).to(torch.bfloat16).requires_grad_()
    trustattr.project(x, 8, 0).sum().backward()
    assert x.grad.dtype == torch.bfloat16


def test_torch_func_grad_and_vmap(gen):
    D, k = 40, 12
    x = torch.randn(6, D, generator=gen, dtype=torch.float64)
    w = torch.randn(k, generator=gen, dtype=torch.float64)

    def loss(row):  # one sample [D] -> scalar
        return (trustattr.project(row[None], k, 5)[0] * w).sum() ** 2

    per_sample = torch.func.vmap(torch.func.grad(loss))(x)  # [6, D]
    R = reference.random_matrix(D, k, 5, dtype=torch.float64)
    expected = 2 * ((x @ R) @ w)[:, None] * (R @ w)[None, :]
    assert torch.allclose(per_sample, expected, atol=1e-10)
    batched = torch.func.vmap(lambda row: trustattr.project(row[None], k, 5)[0])(x)
    assert torch.allclose(batched, x @ R, atol=1e-12)


def test_torch_compile_fullgraph(gen):
    def f(x):
        return trustattr.project(torch.relu(x), 24, 9).square().sum(1)

    x = torch.randn(8, 300, generator=gen)
    compiled = torch.compile(f, fullgraph=True, backend="aot_eager")
    assert torch.allclose(compiled(x), f(x), rtol=1e-6)


BAD_INPUTS = [
    (lambda: trustattr.project(torch.randn(2, 3, 4), 4, 0), ValueError, r"project: argument 'x' must be a 2-D tensor \[N, D\], got a 3-D tensor of shape \[2, 3, 4\]"),
    (lambda: trustattr.project(torch.randn(2, 3), 0, 0), ValueError, r"project: argument 'k' must be >= 1, got 0"),
    (lambda: trustattr.project(torch.randn(2, 3), -5, 0), ValueError, r"argument 'k' must be >= 1, got -5"),
    (lambda: trustattr.project(torch.randn(2, 3), 4, 0, "hadamard"), ValueError, r"argument 'kind' must be one of 'rademacher', 'gaussian', 'sjlt', got 'hadamard'"),
    (lambda: trustattr.project(torch.randn(2, 0), 4, 0), ValueError, r"argument 'x' must have D >= 1 features, got shape \[2, 0\]"),
    (lambda: trustattr.project(torch.ones(2, 3, dtype=torch.int64), 4, 0), TypeError, r"argument 'x' must be float32, float64, bfloat16 or float16, got Long"),
    (lambda: trustattr.project(torch.randn(2, 3), 4, 0, "sjlt", 0, 5), ValueError, r"argument 'nnz' must be <= k \(4\) for kind 'sjlt', got 5"),
    (lambda: trustattr.project(torch.randn(2, 3), 4, 0, "rademacher", -1), ValueError, r"argument 'feature_offset' must be >= 0, got -1"),
    (lambda: trustattr.project_t(torch.randn(2, 3), 0, 0), ValueError, r"project_t: argument 'D' must be >= 1, got 0"),
    (lambda: trustattr.project_t(torch.randn(3), 5, 0), ValueError, r"project_t: argument 'y' must be a 2-D tensor \[N, k\]"),
    (lambda: trustattr.random_matrix(4, 4, 0, dtype=torch.float16), ValueError, r"random_matrix: argument 'dtype' must be float32 or float64"),
    (lambda: trustattr.random_matrix(4, 4, 0, device="meta"), ValueError, r"random_matrix: argument 'device' must be cpu or cuda, got meta"),
]


@pytest.mark.parametrize("call,error,message", BAD_INPUTS)
def test_bad_inputs_name_the_argument(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_without_the_extension_the_reference_serves_the_same_ops():
    code = """
        import warnings, torch
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            import trustattr
        from trustattr import ops, reference
        assert not ops.EXTENSION_LOADED
        assert sum("could not be loaded" in str(w.message) for w in caught) == 1, [str(w.message) for w in caught]
        x = torch.randn(3, 50, dtype=torch.float64)
        assert torch.equal(ops.project(x, 8, 1, "gaussian"), reference.project(x, 8, 1, "gaussian"))
        assert torch.equal(torch.ops.trustattr.random_matrix(5, 4, 2), reference.random_matrix(5, 4, 2))
        try:
            ops.project(x, 0, 1)
        except ValueError as e:
            assert "argument 'k' must be >= 1" in str(e)
        else:
            raise AssertionError("k=0 accepted")
        print("fallback-ok", ops.extension_info()["cpu_isa"])
    """
    result = run_python(code, TRUSTATTR_DISABLE_EXTENSION="1")
    assert result.returncode == 0, result.stderr
    assert "fallback-ok reference" in result.stdout


def cpu_has(flag: str) -> bool:
    try:
        with open("/proc/cpuinfo") as f:
            return any(line.startswith("flags") and f" {flag}" in line for line in f)
    except OSError:
        return False


@pytest.mark.parametrize("isa", ["avx2", "baseline"])
def test_every_cpu_variant_computes_the_same_projection(isa):
    if isa == "avx2" and not cpu_has("avx2"):
        pytest.skip("this CPU has no AVX2: the avx2 variant cannot run here")
    code = """
        import torch
        from trustattr import ops, reference
        print(ops.extension_info()["cpu_isa"])
        g = torch.Generator().manual_seed(0)
        for kind in ("rademacher", "gaussian", "sjlt"):
            for dtype in (torch.float64, torch.float32):
                x = torch.randn(19, 3000, generator=g).to(dtype)
                ref = reference.project(x.double(), 70, 4, kind, 3)
                err = ((ops.project(x, 70, 4, kind, 3).double() - ref).norm() / ref.norm()).item()
                assert err < (1e-12 if dtype == torch.float64 else 2e-6), (kind, dtype, err)
                y = torch.randn(5, 70, generator=g, dtype=dtype)
                ref_t = reference.project_t(y.double(), 3000, 4, kind, 3)
                err_t = ((ops.project_t(y, 3000, 4, kind, 3).double() - ref_t).norm() / ref_t.norm()).item()
                assert err_t < (1e-12 if dtype == torch.float64 else 2e-6), (kind, dtype, err_t)
        print("variant-ok")
    """
    result = run_python(code, TRUSTATTR_CPU_ISA=isa)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [isa, "variant-ok"]
