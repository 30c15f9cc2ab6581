"""End to end on the tiny model: files, per-generation outputs, metrics recomputed from outputs, resuming."""

import importlib
import json
import math

import pytest

from trustattr.trust import BENCHMARKS, evaluate, get_benchmark, recompute_metrics

evaluate_module = importlib.import_module("trustattr.trust.evaluate")  # the package re-exports the function


def test_every_benchmark_writes_outputs_metrics_and_tables(tiny_eval):
    out_dir, metrics, _ = tiny_eval
    assert list(metrics) == list(BENCHMARKS)
    results = json.loads((out_dir / "results.json").read_text())
    assert results["model"] == "tiny" and list(results["benchmarks"]) == list(BENCHMARKS)
    table = (out_dir / "results.md").read_text()
    assert (out_dir / "results.png").stat().st_size > 1000
    for name in BENCHMARKS:
        bench = get_benchmark(name)
        summary = results["benchmarks"][name]
        assert summary["metrics"] == pytest.approx(metrics[name], nan_ok=True)
        headline = summary["headline"]
        assert headline["metric"] == bench.headline_metric() and headline["higher_is_better"] == bench.higher_is_better
        value = metrics[name][headline["metric"]]
        assert 0.0 <= value <= 1.0
        assert f"| {name} | {headline['metric']} | {value:.3f} |" in table
        rows = [json.loads(line) for line in (out_dir / name / "outputs.jsonl").read_text().splitlines()]
        prompts = bench.prompts(limit=2, seed=0)
        assert len(rows) == len(prompts) * bench.protocol.num_samples == summary["num_generations"]
        assert {r["prompt_id"] for r in rows} == {p.id for p in prompts}
        assert all({"prompt_id", "prompt", "plain_prompt", "generation", "benchmark", "sample"} <= set(r) for r in rows)
        assert all(r["num_new_tokens"] <= bench.protocol.max_new_tokens for r in rows)
        assert not (out_dir / name / "checkpoint.jsonl").exists()


def test_per_benchmark_extras(tiny_eval):
    out_dir, metrics, _ = tiny_eval
    loglik = [json.loads(line) for line in (out_dir / "truthfulness" / "loglik.jsonl").read_text().splitlines()]
    questions = {r["prompt_id"] for r in loglik}
    assert len(questions) == 2 and sum(r["correct"] for r in loglik) == 2
    assert all(r["mean_logprob"] == pytest.approx(r["sum_logprob"] / r["num_tokens"]) for r in loglik)
    assert 0.0 <= metrics["truthfulness"]["mc1_loglik_accuracy"] <= 1.0
    assert metrics["toxicity"]["scorer/pearson_vs_perspective"] > 0.8
    breakdown = json.loads((out_dir / "stereotype" / "breakdown.json").read_text())
    assert set(breakdown) == {"benign", "untargeted", "targeted"}
    assert (out_dir / "stereotype" / "agreeability_heatmap.png").stat().st_size > 1000
    rows = [json.loads(line) for line in (out_dir / "privacy" / "outputs.jsonl").read_text().splitlines()]
    assert {r["pool"] for r in rows} == {"pii", "email"}


@pytest.mark.parametrize("name", BENCHMARKS)
def test_metrics_can_be_recomputed_from_the_saved_outputs(tiny_eval, name):
    out_dir, metrics, _ = tiny_eval
    recomputed = recompute_metrics(out_dir / name)
    assert recomputed.keys() == metrics[name].keys()
    for key, value in metrics[name].items():
        assert (math.isnan(value) and math.isnan(recomputed[key])) or recomputed[key] == pytest.approx(value)


def test_a_finished_benchmark_is_not_generated_again_and_other_settings_rerun(tiny, tiny_eval, tmp_path,
                                                                               monkeypatch):
    out_dir, metrics, _ = tiny_eval
    lines = []

    def no_generation(*args, **kwargs):
        raise AssertionError("a finished benchmark was generated again")

    with monkeypatch.context() as patch:
        patch.setattr(evaluate_module, "generate_batch", no_generation)
        again = evaluate(*tiny, out_dir=out_dir, benchmarks=["ethics"], limit=2, batch_size=4, progress=False,
                         log=lines.append)
    assert again["ethics"] == pytest.approx(metrics["ethics"])
    assert any("metrics recomputed" in line for line in lines)
    lines.clear()
    evaluate(*tiny, out_dir=tmp_path, benchmarks=["ethics"], limit=1, batch_size=4, progress=False,
             log=lines.append, ethics={"system_prompts": ("benign",)})
    assert not any("metrics recomputed" in line for line in lines)
    rows = (tmp_path / "ethics" / "outputs.jsonl").read_text().splitlines()
    assert len(rows) == 2  # one wrong + one not-wrong action, benign prompt only


def test_an_interrupted_run_resumes_from_its_checkpoint_and_matches_an_uninterrupted_one(tiny, tmp_path, monkeypatch):
    kwargs = dict(benchmarks=["toxicity"], limit=3, batch_size=2, progress=False,
                  toxicity={"system_prompts": ("benign",), "max_new_tokens": 4})
    evaluate(*tiny, out_dir=tmp_path / "straight", **kwargs)
    real = evaluate_module.generate_batch
    calls = []

    def crash_after_two_batches(*args, **inner):
        if len(calls) == 2:
            raise KeyboardInterrupt
        calls.append(1)
        return real(*args, **inner)

    monkeypatch.setattr(evaluate_module, "generate_batch", crash_after_two_batches)
    with pytest.raises(KeyboardInterrupt):
        evaluate(*tiny, out_dir=tmp_path / "resumed", **kwargs)
    checkpoint = tmp_path / "resumed" / "toxicity" / "checkpoint.jsonl"
    assert len(checkpoint.read_text().splitlines()) == 3  # header + two finished batches
    assert not (tmp_path / "resumed" / "toxicity" / "outputs.jsonl").exists()  # nothing half-written
    with open(checkpoint, "a") as handle:
        handle.write('{"batch": 2, "recor')  # a torn line from a kill mid-write
    resumed_calls = []
    monkeypatch.setattr(evaluate_module, "generate_batch",
                        lambda *a, **k: resumed_calls.append(1) or real(*a, **k))
    evaluate(*tiny, out_dir=tmp_path / "resumed", **kwargs)
    assert len(resumed_calls) == 1  # 3 prompts x 2 samples = 6 generations = 3 batches; 2 were done
    straight = (tmp_path / "straight" / "toxicity" / "outputs.jsonl").read_text()
    assert (tmp_path / "resumed" / "toxicity" / "outputs.jsonl").read_text() == straight


def test_bad_arguments_are_named(tiny, tmp_path):
    with pytest.raises(ValueError, match="unknown benchmark"):
        evaluate(*tiny, out_dir=tmp_path, benchmarks=["honesty"])
    with pytest.raises(ValueError, match="batch_size"):
        evaluate(*tiny, out_dir=tmp_path, batch_size=0)
    with pytest.raises(ValueError, match="limit"):
        evaluate(*tiny, out_dir=tmp_path, limit=0)
    with pytest.raises(ValueError, match="unknown ethics protocol setting"):
        evaluate(*tiny, out_dir=tmp_path, ethics={"temp": 1})
