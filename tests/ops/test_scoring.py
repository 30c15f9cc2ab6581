"""score, topk_score and datainf_scores: float64 oracles (DataInf also against the explicit inverse
of its definition), the exact top-k order (ties, NaN, largest=False), memory-mapped train files,
bit-identical results across threads and ops, opcheck, torch.compile and bad-input errors."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest
import torch

from tests.ops.helpers import assert_op_and_oracle_refuse, rel_err, run_python
from trustattr import ops, reference

TOL = {torch.float64: 1e-12, torch.float32: 2e-6, torch.bfloat16: 2e-6, torch.float16: 2e-6}


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("normalize", [False, True])
@pytest.mark.parametrize("N,M,k", [(130, 3, 77), (64, 11, 16), (5, 1, 1)])
def test_score_matches_reference(dtype, normalize, N, M, k, gen):
    train = torch.randn(N, k, generator=gen).to(dtype)
    query = torch.randn(M, k, generator=gen).to(dtype)
    train[1] = 0  # a zero row: cosine 0, not NaN
    out = ops.score(train, query, normalize)
    assert out.dtype == (torch.float64 if dtype == torch.float64 else torch.float32)
    assert rel_err(out, reference.score(train, query, normalize)) < TOL[dtype]
    if normalize:
        assert torch.equal(out[1], torch.zeros(M, dtype=out.dtype))
        assert out.abs().max() <= 1 + 1e-6


def test_many_long_queries_give_the_same_bits_as_one_at_a_time(gen):
    # 70 queries x 1200 columns exceed the cache budget: the kernel switches to 512-column spans
    # with accumulators kept between spans; a single query streams. Same dot sequence, same bits.
    train = torch.randn(37, 1200, generator=gen)
    query = torch.randn(70, 1200, generator=gen)
    for normalize in (False, True):
        many = ops.score(train, query, normalize)
        for q in (0, 9, 64, 69):
            assert torch.equal(many[:, q], ops.score(train, query[q:q + 1], normalize)[:, 0])
        assert rel_err(many, reference.score(train, query, normalize)) < 2e-6


def test_mixed_dtypes_compute_in_the_wider_one(gen):
    train = torch.randn(40, 33, generator=gen).to(torch.float16)
    query = torch.randn(2, 33, generator=gen)
    assert ops.score(train, query).dtype == torch.float32
    assert ops.score(train, query.double()).dtype == torch.float64
    assert rel_err(ops.score(train, query.double()), reference.score(train, query.double())) < 1e-12


@pytest.mark.parametrize("largest", [True, False])
@pytest.mark.parametrize("normalize", [False, True])
def test_topk_is_the_stable_sort_of_score(largest, normalize, gen, threads):
    train = torch.randn(1000, 40, generator=gen)
    train[700:720] = train[3]  # exact ties: smaller index first
    query = torch.randn(5, 40, generator=gen)
    with threads(2):
        values, indices = ops.topk_score(train, query, 37, normalize, largest)
    scores = ops.score(train, query, normalize).T  # [M, N]
    expected_values, expected_indices = torch.sort(scores, dim=1, descending=largest, stable=True)
    assert torch.equal(values, expected_values[:, :37])
    assert torch.equal(indices, expected_indices[:, :37])
    with threads(1):
        assert all(torch.equal(x, y) for x, y in zip(ops.topk_score(train, query, 37, normalize, largest),
                                                       (values, indices)))
    ref_values, _ = reference.topk_score(train.double(), query.double(), 37, normalize, largest)
    assert torch.allclose(values.double(), ref_values, rtol=1e-5, atol=1e-5)


def test_topk_ties_nan_and_topk_equal_to_n():
    train = torch.tensor([[1.0], [3.0], [float("nan")], [3.0], [0.0], [float("nan")]])
    query = torch.ones(1, 1)
    values, indices = ops.topk_score(train, query, 6)
    assert indices.tolist() == [[2, 5, 1, 3, 0, 4]]  # NaN first (as torch.sort), ties by index
    assert torch.equal(values[0, 2:], torch.tensor([3.0, 3.0, 1.0, 0.0]))
    values, indices = ops.topk_score(train, query, 3, largest=False)
    assert indices.tolist() == [[4, 0, 1]]


def test_topk_streams_a_memory_mapped_file(tmp_path, gen):
    train = torch.randn(3000, 70, generator=gen)
    query = torch.randn(4, 70, generator=gen)
    for dtype, np_dtype in ((torch.float32, np.float32), (torch.float16, np.float16)):
        path = tmp_path / f"train_{np_dtype.__name__}.bin"
        mapped = np.memmap(path, dtype=np_dtype, mode="w+", shape=(3000, 70))
        mapped[:] = train.to(dtype).numpy()
        mapped.flush()
        del mapped
        on_disk = torch.from_numpy(np.memmap(path, dtype=np_dtype, mode="r+", shape=(3000, 70)))
        in_memory = train.to(dtype)
        for a, b in zip(ops.topk_score(on_disk, query, 50, True), ops.topk_score(in_memory, query, 50, True)):
            assert torch.equal(a, b)
        assert torch.equal(ops.datainf_scores(on_disk, query[0]), ops.datainf_scores(in_memory, query[0]))


def test_strided_train_rows_are_read_in_place(gen):
    wide = torch.randn(200, 100, generator=gen)
    query = torch.randn(3, 60, generator=gen)
    view = wide[:, 20:80]  # row stride 100
    assert torch.equal(ops.score(view, query), ops.score(view.contiguous(), query))
    assert torch.equal(ops.score(wide.T.contiguous().T[:, :60], query), ops.score(wide[:, :60].contiguous(), query))


DATAINF_CASES = [  # damping, blocks
    (None, None),
    (0.5, None),
    (None, [0, 4, 9, 16]),
    (0.05, [0, 1, 16]),
]


@pytest.mark.parametrize("damping,blocks", DATAINF_CASES)
def test_datainf_matches_the_explicit_inverse(damping, blocks, gen):
    train = torch.randn(30, 16, generator=gen, dtype=torch.float64)
    train[:, :4] *= 5  # blocks with different scales, so per-block damping matters
    query = torch.randn(16, generator=gen, dtype=torch.float64)
    out = ops.datainf_scores(train, query, damping, blocks)
    brute = reference.datainf_scores_bruteforce(train, query, damping, blocks)
    assert rel_err(out, brute) < 1e-10
    assert rel_err(out, reference.datainf_scores(train, query, damping, blocks)) < 1e-12


def test_datainf_default_damping_is_a_tenth_of_the_mean_square(gen):
    train = torch.randn(25, 8, generator=gen, dtype=torch.float64)
    query = torch.randn(8, generator=gen, dtype=torch.float64)
    blocks = [0, 3, 8]
    lambdas = [0.1 * train[:, lo:hi].square().mean().item() for lo, hi in zip(blocks, blocks[1:])]
    # One block at a time with its explicit damping == all blocks with the per-block default.
    parts = [ops.datainf_scores(train[:, lo:hi].contiguous(), query[lo:hi].contiguous(), lam)
             for (lo, hi), lam in zip(zip(blocks, blocks[1:]), lambdas)]
    assert torch.allclose(ops.datainf_scores(train, query, None, blocks), sum(parts), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_datainf_low_precision_and_threads(dtype, gen, threads):
    train = torch.randn(9000, 48, generator=gen).to(dtype)  # > one 4096-row chunk
    query = torch.randn(48, generator=gen).to(dtype)
    with threads(2):
        out = ops.datainf_scores(train, query, None, [0, 20, 48])
    with threads(1):
        assert torch.equal(ops.datainf_scores(train, query, None, [0, 20, 48]), out)
    assert rel_err(out, reference.datainf_scores(train, query, None, [0, 20, 48])) < 1e-5


def test_datainf_all_zero_block_contributes_nothing(gen):
    train = torch.randn(10, 6, generator=gen, dtype=torch.float64)
    train[:, 4:] = 0
    query = torch.randn(6, generator=gen, dtype=torch.float64)
    out = ops.datainf_scores(train, query, None, [0, 4, 6])
    assert torch.isfinite(out).all()
    assert torch.allclose(out, ops.datainf_scores(train[:, :4].contiguous(), query[:4].contiguous()), rtol=1e-12)


def test_opcheck(gen):
    train, query = torch.randn(20, 9, generator=gen), torch.randn(3, 9, generator=gen)
    torch.library.opcheck(torch.ops.trustattr.score.default, (train, query, True))
    torch.library.opcheck(torch.ops.trustattr.topk_score.default, (train, query, 4, False, False))
    torch.library.opcheck(torch.ops.trustattr.datainf_scores.default, (train, query[0], None, [0, 4, 9]))
    torch.library.opcheck(torch.ops.trustattr.datainf_scores.default, (train, query[0], 0.3))


def test_torch_compile_fullgraph(gen):
    def f(train, query):
        values, indices = ops.topk_score(train * 2, query, 5, normalize=True)
        return values.sum() + ops.score(train, query).sum() + ops.datainf_scores(train, query[0], None, [0, 3, 9]).sum(), indices

    train, query = torch.randn(30, 9, generator=gen), torch.randn(2, 9, generator=gen)
    compiled = torch.compile(f, fullgraph=True, backend="aot_eager")
    (value, indices), (expected, expected_indices) = compiled(train, query), f(train, query)
    assert torch.allclose(value, expected, rtol=1e-5)
    assert torch.equal(indices, expected_indices)


T2, Q2 = torch.randn(6, 4), torch.randn(2, 4)
BAD_INPUTS = [  # (op, args, error, message): the compiled op and the reference raise the same
    ("score", (T2[0], Q2), ValueError, r"score: argument 'train' must be a 2-D tensor \[N, k\], got a 1-D tensor"),
    ("score", (T2, Q2[0]), ValueError, r"score: argument 'query' must be a 2-D tensor \[M, k\], got a 1-D tensor"),
    ("score", (T2, Q2[:, :3]), ValueError, r"argument 'query' must have the same number of columns k as 'train' \(4\), got shape \[2, 3\]"),
    ("score", (T2, Q2.to("meta")), ValueError, r"score: arguments 'train' and 'query' must be on the same device, got cpu and meta"),
    ("score", (T2.long(), Q2), TypeError, r"argument 'train' must be float32, float64, bfloat16 or float16, got (Long|torch.int64)"),
    ("topk_score", (T2, Q2.int(), 2), TypeError, r"argument 'query' must be float32, float64, bfloat16 or float16, got (Int|torch.int32)"),
    ("topk_score", (T2, Q2, 0), ValueError, r"topk_score: argument 'topk' must be >= 1, got 0"),
    ("topk_score", (T2, Q2, 7), ValueError, r"topk_score: argument 'topk' must be <= N, the number of train rows \(6\), got 7"),
    ("datainf_scores", (T2, Q2), ValueError, r"datainf_scores: argument 'query' must be a 1-D tensor \[k\], got a 2-D tensor"),
    ("datainf_scores", (T2, Q2[0], 0.0), ValueError, r"argument 'damping' must be a finite number > 0 \(or None for the per-block default\), got 0"),
    ("datainf_scores", (T2, Q2[0], None, [1, 4]), ValueError, r"argument 'blocks' must be column boundaries \[0, ..., k\] starting at 0 and ending at k = 4, got \[1, 4\]"),
    ("datainf_scores", (T2, Q2[0], None, [0, 3]), ValueError, r"ending at k = 4, got \[0, 3\]"),
    ("datainf_scores", (T2, Q2[0], None, [0, 3, 3, 4]), ValueError, r"argument 'blocks' must be strictly increasing, got \[0, 3, 3, 4\]"),
    ("datainf_scores", (T2[:0], Q2[0]), ValueError, r"datainf_scores: argument 'train' must have N >= 1 rows, got shape \[0, 4\]"),
]


@pytest.mark.parametrize("op,args,error,message", BAD_INPUTS)
def test_bad_inputs_name_the_argument(op, args, error, message):
    assert_op_and_oracle_refuse(op, args, error, message)


def test_without_the_extension_the_reference_serves_every_new_op():
    code = textwrap.dedent("""
        import warnings, torch
        warnings.simplefilter("ignore")
        from trustattr import ops, reference
        assert not ops.EXTENSION_LOADED
        a, g = torch.randn(3, 4, 10, dtype=torch.float64), torch.randn(3, 4, 6, dtype=torch.float64)
        seg = torch.tensor([0, 1, 0])
        assert torch.equal(ops.project_factored(a, g, 3, 2, 5, seg, 2), reference.project_factored(a, g, 3, 2, 5, seg, 2))
        assert torch.equal(ops.project_outer(a, g, 7, 5, 3), reference.project_outer(a, g, 7, 5, 3))
        assert ops.segment_sum(a[:, 0], seg, 2).shape == (2, 10)
        train, query = torch.randn(20, 6), torch.randn(2, 6)
        assert torch.equal(ops.topk_score(train, query, 4)[1], reference.topk_score(train, query, 4)[1])
        assert torch.equal(ops.score(train, query, True), reference.score(train, query, True))
        assert torch.equal(ops.datainf_scores(train, query[0], None, [0, 2, 6]),
                           reference.datainf_scores(train, query[0], None, [0, 2, 6]))
        try:
            ops.topk_score(train, query, 21)
        except ValueError as e:
            assert "must be <= N" in str(e)
        else:
            raise AssertionError("topk > N accepted")
        print("fallback-ok")
    """)
    run = run_python(code, timeout=120, TRUSTATTR_DISABLE_EXTENSION="1")
    assert run.returncode == 0, run.stderr
    assert "fallback-ok" in run.stdout
