"""The issue-5 speed benchmarks (trustattr.perf.layers / scoring) at tiny shapes: their fused and
baseline formulations agree, the rows carry the reported quantities, and bad arguments are refused."""

from __future__ import annotations

import pytest

from trustattr.perf import layers, scoring
from trustattr.perf.measure import peak_extra_memory


def test_layers_benchmark_compares_equal_results():
    args = layers.LayersBenchArguments(factored=[3, 20, 40, 24, 8, 6], outer=[2, 9, 30, 20, 70], reps=1, memory=False,
                                      gemm_sizes=[128])
    result = layers.run(args, log=lambda _: None)
    factored, outer = result["rows"]
    assert factored["op"] == "project_factored" and outer["op"] == "project_outer"
    for row in (factored, outer):
        assert row["rel_diff_vs_baseline"] < 1e-5  # the fused op computes what the torch chain computes
        assert row["ratio"] == pytest.approx(row["baseline_seconds"] / row["fused_seconds"])
    assert "| project_outer (vs bmm (G) + project) |" in layers.markdown(result)


def test_scoring_benchmark_on_a_small_memory_mapped_file(tmp_path):
    args = scoring.ScoringBenchArguments(rows=3000, k=48, queries=3, topk=7, score_rows=500, reps=1, memory=False,
                                         directory=str(tmp_path), bandwidth_gib=0.05)
    result = scoring.run(args, log=lambda _: None)
    topk, score, datainf = result["rows"]
    assert topk["values_match_baseline"] is True
    assert topk["file_bytes"] == 3000 * 48 * 4
    assert [r["op"] for r in (score, datainf)] == ["score", "datainf_scores"]
    assert list(tmp_path.iterdir()) == []  # the temporary feature file is deleted
    assert "memory-mapped file" in scoring.markdown(result)


def test_peak_extra_memory_sees_a_known_allocation():
    mem = peak_extra_memory("x = 1", "torch.ones(4 << 20, dtype=torch.uint8)", "torch.ones(1)")
    assert 4 << 20 <= mem["extra_peak_bytes"] < (4 << 20) + (2 << 20)


@pytest.mark.parametrize("make,message", [
    (lambda: layers.LayersBenchArguments(factored=[1, 2, 3]), r"LayersBenchArguments.factored must be 6 positive integers"),
    (lambda: layers.LayersBenchArguments(dtype="int8"), r"LayersBenchArguments.dtype must be one of"),
    (lambda: scoring.ScoringBenchArguments(rows=5, topk=6), r"ScoringBenchArguments.topk must be <= rows \(5\), got 6"),
    (lambda: scoring.ScoringBenchArguments(k=0), r"ScoringBenchArguments.k must be >= 1, got 0"),
])
def test_bad_arguments_name_the_field(make, message):
    with pytest.raises(ValueError, match=message):
        make()
