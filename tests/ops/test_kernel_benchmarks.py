"""The issue-5 speed benchmarks (trustattr.perf.layers / scoring) at tiny shapes: their fused and
baseline formulations agree, the rows carry the reported quantities, and bad arguments are refused;
the bench scripts' command line is built from the arguments dataclasses (trustattr.perf.script)."""

from __future__ import annotations

import json

import pytest

from trustattr.perf import layers, scoring, script
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


def test_bench_command_line_is_built_from_the_dataclass(tmp_path):
    args, out = script.parse_arguments(layers.LayersBenchArguments, "layers", [
        "--factored", "1,2,3,4,5,6", "--no-memory", "--reps", "2", "--gemm-sizes", "64", "--out", str(tmp_path / "r.json")])
    assert args == layers.LayersBenchArguments(factored=[1, 2, 3, 4, 5, 6], memory=False, reps=2, gemm_sizes=[64])
    assert out == tmp_path / "r.json"
    assert script.parse_arguments(scoring.ScoringBenchArguments, "scoring", []) == (scoring.ScoringBenchArguments(), None)
    help_text = " ".join(script.build_parser(scoring.ScoringBenchArguments, "scoring").format_help().split())
    assert "--score-rows SCORE_ROWS train rows of the in-memory score/datainf runs (default 200000)" in help_text


@pytest.mark.parametrize("argv,message", [
    (["--rows", "5", "--topk", "6"], "ScoringBenchArguments.topk must be <= rows (5), got 6"),
    (["--k", "x"], "argument --k: invalid int value: 'x'"),
])
def test_bench_command_line_refuses_bad_values(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        script.parse_arguments(scoring.ScoringBenchArguments, "scoring", argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_bench_main_prints_the_table_and_saves_the_result(tmp_path, capsys):
    def fake_run(args):
        return {"machine": "test box", "reps": args.reps}

    out = tmp_path / "result.json"
    result = script.bench_main(layers.LayersBenchArguments, fake_run, lambda r: f"| reps | {r['reps']} |", "layers",
                               ["--reps", "3", "--out", str(out)])
    assert result == {"machine": "test box", "reps": 3}
    assert capsys.readouterr().out == "machine: test box\n| reps | 3 |\n"
    assert json.loads(out.read_text()) == result
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]  # written atomically, no temp file left
