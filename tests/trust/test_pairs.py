"""paper_pairs: joining a stage's generations with the previous stage's by prompt id."""

import pytest

from trustattr.errors import DataError
from trustattr.preference_data import PreferencePair
from trustattr.trust import paper_pairs


def _row(prompt_id, generation, sample=0, plain="Is it wrong?", **extra):
    return {"benchmark": "ethics", "prompt_id": prompt_id, "sample": sample, "plain_prompt": plain,
            "generation": generation, **extra}


def test_pairs_join_by_prompt_and_sample_and_drop_uninformative_ones():
    after = [_row("a", " yes"), _row("b", "no"), _row("c", "same"), _row("d", ""), _row("e", "only after")]
    before = [_row("a", "no"), _row("b", "yes"), _row("c", "same"), _row("d", "x"), _row("b", "yes", sample=1)]
    pairs = paper_pairs(after, before)
    assert pairs == [
        PreferencePair(id="ethics-a-s0", prompt="Human: Is it wrong?\n\nAssistant:", chosen="yes", rejected="no",
                       source="paper-ethics"),
        PreferencePair(id="ethics-b-s0", prompt="Human: Is it wrong?\n\nAssistant:", chosen="no", rejected="yes",
                       source="paper-ethics"),
    ]


def test_toxicity_pairs_use_the_kept_first_sentence():
    after = [_row("t", "Fine. More text", continuation="Fine.")]
    before = [_row("t", "Rude words. More", continuation="Rude words.")]
    assert [(p.chosen, p.rejected) for p in paper_pairs(after, before)] == [("Fine.", "Rude words.")]


def test_limit_is_a_seeded_subset():
    after = [_row(str(i), f"new {i}") for i in range(20)]
    before = [_row(str(i), f"old {i}") for i in range(20)]
    few = paper_pairs(after, before, limit=5)
    assert len(few) == 5 and few == paper_pairs(after, before, limit=5)
    assert {p.id for p in few} <= {p.id for p in paper_pairs(after, before)}


def test_mismatched_runs_are_reported():
    with pytest.raises(DataError, match="differs between the before and after"):
        paper_pairs([_row("a", "x", plain="one")], [_row("a", "y", plain="two")])
    with pytest.raises(DataError, match="share no"):
        paper_pairs([_row("a", "x")], [_row("b", "y")])
    with pytest.raises(DataError, match="does not exist"):
        paper_pairs("/nonexistent/outputs.jsonl", [])


def test_pairs_from_two_tiny_evaluations(tiny_eval, tmp_path):
    from trustattr.models import load_model
    from trustattr.trust import evaluate

    out_dir, _, _ = tiny_eval
    other_model = load_model("tiny", seed=1)  # another "stage": same benchmark, protocol, limit and seed
    evaluate(*other_model, out_dir=tmp_path, benchmarks=["toxicity"], limit=2, batch_size=4, progress=False)
    pairs = paper_pairs(tmp_path / "toxicity", out_dir / "toxicity")
    assert len(pairs) == 8  # 2 prompts x 2 system prompts x 2 samples, all different
    assert all(p.prompt.startswith("Human: You are") and p.chosen != p.rejected for p in pairs)
