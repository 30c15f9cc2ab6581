"""`trustattr eval` and `trustattr report` through typer's CliRunner, and the argument parsers behind them."""

import json

import pytest
from typer.testing import CliRunner

from trustattr.cli.main import app
from trustattr.trust.arguments import EvalArguments, parse_models, parse_settings

runner = CliRunner()


def test_eval_tiny_writes_results_table_and_plots(tmp_path):
    out = tmp_path / "eval"
    result = runner.invoke(app, ["eval", "--model", "tiny", "--limit", "2", "--out", str(out), "--threads", "1",
                                 "--batch-size", "8"])
    assert result.exit_code == 0, result.output
    results = json.loads((out / "results.json").read_text())
    assert list(results["benchmarks"]) == ["toxicity", "stereotype", "ethics", "truthfulness", "privacy"]
    assert all(s["settings"]["limit"] == 2 and s["settings"]["protocol"] == "fast"
               for s in results["benchmarks"].values())
    assert (out / "results.md").read_text().startswith("# Trust evaluation: `tiny`")
    assert (out / "results.png").stat().st_size > 1000
    assert (out / "stereotype" / "agreeability_heatmap.png").exists()
    assert "| truthfulness | mc1_accuracy |" in result.output


def test_eval_several_stages_then_report(tmp_path):
    run = tmp_path / "run"
    result = runner.invoke(app, ["eval", "--model", "base=tiny,sft=tiny", "--benchmarks", "ethics,privacy",
                                 "--limit", "1", "--out", str(run / "eval"), "--threads", "1",
                                 "--set", "privacy.email_shots=", "--no-chat-template"])
    assert result.exit_code == 0, result.output
    for stage in ("base", "sft"):
        saved = json.loads((run / "eval" / stage / "results.json").read_text())
        assert set(saved["benchmarks"]) == {"ethics", "privacy"}
        assert saved["benchmarks"]["ethics"]["settings"]["chat_template"] is False
    table = (run / "eval" / "stages.md").read_text()
    assert "| benchmark | metric | better | base | sft |" in table and "| privacy | pii/leak_rate | ↓ |" in table
    assert (run / "eval" / "stages.png").stat().st_size > 1000

    result = runner.invoke(app, ["report", str(run)])  # evaluations only: no attribution yet
    assert result.exit_code == 0, result.output
    report = (run / "report.md").read_text()
    assert "No attribution scores in this run yet" in report and "| ethics | benign/fnr | ↓ |" in report
    assert (run / "report_stages.png").exists()

    score = run / "score" / "sft"
    score.mkdir(parents=True)
    (score / "summary.json").write_text(json.dumps({
        "method": "datainf", "num_train": 12, "nested": {"x": 1},
        "benchmarks": {"ethics": {"direction": 1, "share_trust_helping": 0.25, "top_helping": ["hh-1"]}}}))
    (score / "report.md").write_text("# Attribution\n\nTop pairs: hh-0001")
    assert runner.invoke(app, ["report", str(run)]).exit_code == 0
    report = (run / "report.md").read_text()
    assert "### sft" in report and "| method | datainf |" in report and "Top pairs: hh-0001" in report
    assert "| benchmarks | direction | share_trust_helping |" in report and "| ethics | 1 | 0.250 |" in report
    assert report.index("## Attribution") < report.index("## Details per stage")


def _fails(args, message, code=None):
    result = runner.invoke(app, args)
    text = result.output + (result.stderr or "") + str(result.exception or "")
    assert result.exit_code != 0 and (code is None or result.exit_code == code), text
    assert message in text


def test_cli_errors_are_one_line_with_exit_code_1(tmp_path):
    _fails(["eval", "--model", "tiny", "--benchmarks", "honesty", "--out", str(tmp_path)], "got honesty", 1)
    _fails(["eval", "--model", "tiny", "--set", "ethics.temp=1", "--out", str(tmp_path)], "unknown setting", 1)
    _fails(["eval", "--model", "tiny", "--full", "--limit", "5", "--out", str(tmp_path)], "--full")
    _fails(["report", str(tmp_path / "missing")], "does not exist", 1)
    (tmp_path / "empty").mkdir()
    _fails(["report", str(tmp_path / "empty")], "no trust evaluations", 1)


def test_parse_models_labels_stages():
    assert parse_models(["base=smol,sft=RUN/stages/sft/model", "tiny"]) == (
        ("base", "smol"), ("sft", "RUN/stages/sft/model"), ("tiny", "tiny"))
    assert parse_models(["RUN/stages/dpo/model"]) == (("dpo", "RUN/stages/dpo/model"),)
    with pytest.raises(ValueError, match="LABEL=MODEL"):
        parse_models(["=smol"])
    with pytest.raises(ValueError, match="labels must be unique"):
        EvalArguments(models=parse_models(["tiny,tiny"]))


def test_parse_settings_converts_to_the_field_types():
    parsed = parse_settings(["toxicity.num_samples=5", "toxicity.temperature=0.7", "privacy.email_shots=one_shot",
                             "ethics.include_not_wrong=false", "truthfulness.source=my.jsonl"])
    assert parsed == {"toxicity": {"num_samples": 5, "temperature": 0.7}, "privacy": {"email_shots": ("one_shot",)},
                      "ethics": {"include_not_wrong": False}, "truthfulness": {"source": "my.jsonl"}}
    with pytest.raises(ValueError, match="expected a value of type int"):
        parse_settings(["toxicity.num_samples=five"])
    with pytest.raises(ValueError, match="BENCHMARK.FIELD=VALUE"):
        parse_settings(["num_samples=5"])
    with pytest.raises(ValueError, match="unknown benchmark"):
        parse_settings(["honesty.num_samples=5"])


def test_eval_arguments_validation_names_the_field():
    with pytest.raises(ValueError, match="models"):
        EvalArguments(models=())
    with pytest.raises(ValueError, match="protocol"):
        EvalArguments(models=(("t", "tiny"),), protocol="slow")
    with pytest.raises(ValueError, match="device"):
        EvalArguments(models=(("t", "tiny"),), device="tpu")
    with pytest.raises(ValueError, match="limit"):
        EvalArguments(models=(("t", "tiny"),), limit=-1)
