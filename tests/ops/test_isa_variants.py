"""Every CPU kernel family on every instruction-set variant this CPU runs (issue 17): the variants
size their vectors and register tiles differently (64-byte vectors on AVX-512, 32 on AVX2, 16 on
SSE2/NEON), but no sum depends on that. AVX-512 and AVX2 run the same FMA chains lane for lane, so
they agree bit for bit on every op; the baseline (no FMA on SSE2) agrees bit for bit where every
product is exact (sjlt: signs +-1) and to float32 rounding elsewhere. Also: the ISA benchmark
harness (trustattr.perf.isa) at tiny shapes, without timed assertions."""

from __future__ import annotations

import os

import pytest
import torch

from tests.ops.helpers import rel_err, run_python
from trustattr.perf import isa as isa_bench

# Shapes that reach every tile path: row counts that are not multiples of the micro-kernel rows
# (6 / 12), k not a multiple of any panel width, a partial feature chunk, more queries than one
# register tile holds (3 on AVX2, 8 on AVX-512), a partial last dot vector (k % 16 != 0), and
# enough long queries for score's blocked path (M * k * 4 bytes > 256 KiB).
_CODE = """
    import torch
    from trustattr import ops
    g = torch.Generator().manual_seed(0)
    out = {{}}
    for dtype in (torch.float32, torch.float64):
        x = torch.randn(19, 3000, generator=g).to(dtype)
        y = torch.randn(7, 70, generator=g).to(dtype)
        for kind in ("rademacher", "gaussian", "sjlt"):
            out[f"project/{{kind}}/{{dtype}}"] = ops.project(x, 70, 4, kind, 3)
            out[f"project_t/{{kind}}/{{dtype}}"] = ops.project_t(y, 3000, 4, kind, 3)
    out["project/sjlt/nnz4/bf16"] = ops.project(torch.randn(70, 5000, generator=g).bfloat16(), 300, 1, "sjlt", 0, 4)
    train = torch.randn(301, 1000, generator=g)
    for m in (1, 11, 70):
        q = torch.randn(m, 1000, generator=g)
        out[f"score/{{m}}"] = ops.score(train, q)
        out[f"score/{{m}}/cos"] = ops.score(train, q, normalize=True)
        out[f"score/{{m}}/f64"] = ops.score(train.double(), q.double())
        v, i = ops.topk_score(train, q, 9, largest=False)
        out[f"topk/{{m}}/values"], out[f"topk/{{m}}/indices"] = v, i
    out["score/bf16"] = ops.score(train.bfloat16(), q)
    out["datainf"] = ops.datainf_scores(train, q[0], None, [0, 100, 333, 1000])
    out["datainf/damped"] = ops.datainf_scores(train, q[0], 0.5, [0, 1000])
    a, gr = torch.randn(5, 19, 70, generator=g), torch.randn(5, 19, 45, generator=g)
    out["factored"] = ops.project_factored(a, gr, 20, 9, 3)
    out["outer"] = ops.project_outer(a, gr, 70, 3, 5)
    torch.save(out, "{path}")
    print(ops.extension_info()["cpu_isa"])
"""


@pytest.fixture(scope="module")
def variant_outputs() -> dict[str, dict[str, torch.Tensor]]:
    results = {}
    for isa in isa_bench.ISAS:
        if isa_bench.runnable(isa) is not None:
            continue
        path = f"/tmp/trustattr_isa_variants_{os.getpid()}_{isa}.pt"
        forced = {"TRUSTATTR_CPU_ISA": isa} if isa != "avx512" else {}
        run = run_python(_CODE.format(path=path), timeout=300, **forced)
        assert run.returncode == 0, run.stderr
        assert run.stdout.split()[-1] == isa  # the variant asked for is the one that ran
        results[isa] = torch.load(path)
        os.remove(path)
    assert "baseline" in results
    return results


def test_avx512_and_avx2_agree_bit_for_bit_on_every_op(variant_outputs):
    if not {"avx512", "avx2"} <= set(variant_outputs):
        pytest.skip("this CPU does not run both the avx512 and the avx2 variant")
    wide, narrow = variant_outputs["avx512"], variant_outputs["avx2"]
    assert wide.keys() == narrow.keys()
    different = [name for name in wide if not torch.equal(wide[name], narrow[name])]
    assert different == []


def test_the_baseline_agrees_exactly_where_products_are_exact_and_to_rounding_elsewhere(variant_outputs):
    base = variant_outputs["baseline"]
    for isa, other in variant_outputs.items():
        for name, value in other.items():
            if "/sjlt/" in name or name.endswith("/indices"):
                assert torch.equal(base[name], value), (isa, name)
            else:
                assert rel_err(base[name], value) < (1e-12 if "float64" in name or "f64" in name else 2e-6), (isa, name)


def test_runnable_names_what_a_cpu_lacks():
    assert isa_bench.runnable("baseline", set()) is None
    if isa_bench.runnable("avx2", {"avx2", "fma", "bmi2"}) is None:  # an x86-64 machine
        assert isa_bench.runnable("avx512", {"avx2", "fma", "bmi2"}) == \
            "this CPU lacks avx512f, avx512bw, avx512dq, avx512vl"
        assert isa_bench.runnable("avx2", {"avx2"}) == "this CPU lacks fma, bmi2"


def test_isa_arguments_refuse_bad_values():
    with pytest.raises(ValueError, match="isas must be among"):
        isa_bench.IsaBenchArguments(isas=["sse9"])
    with pytest.raises(ValueError, match="shapes are NxDxk"):
        isa_bench.IsaBenchArguments(project=["8x16"])
    with pytest.raises(ValueError, match="clock must be cpu or wall"):
        isa_bench.IsaBenchArguments(clock="gpu")


def test_isa_benchmark_runs_one_process_per_variant_and_labels_every_row():
    args = isa_bench.IsaBenchArguments.quick(
        isas=["baseline"], project=["3x300x40"], project_t=["2x300x40"], sjlt=["3x500x40"], factored=[2, 5, 30, 20, 4, 3],
        outer=[2, 5, 12, 10, 40], score=[50, 40, 3], topk=[60, 40, 2, 5], datainf=[60, 40, 2], reps=1)
    result = isa_bench.run(args, log=lambda _: None)
    variant = result["variants"]["baseline"]
    assert variant["cpu_isa"] == "baseline" and variant["mkl_enable_instructions"] == "SSE4_2"
    assert variant["torch_capability"] == "DEFAULT"  # ATEN_CPU_CAPABILITY=default reached torch
    assert [r["op"] for r in variant["rows"]] == ["project", "project_t", "sjlt", "project_factored", "project_outer",
                                                 "score", "topk_score", "datainf_scores"]
    for row in variant["rows"]:
        assert row["cpu_isa"] == "baseline" and row["cpu"] == result["machine"]["cpu"]
        assert row["ratio"] == pytest.approx(row["baseline_seconds"] / row["fused_seconds"])
    table = isa_bench.markdown(result)
    assert "| op | shape | torch formulation | baseline |" in table
    assert "baseline: trustattr baseline, torch DEFAULT, MKL SSE4_2" in table
