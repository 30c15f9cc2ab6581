"""Preference data: HH transcript parsing, the shipped HH split, local files, errors."""

from __future__ import annotations

import gzip
import json

import pytest

from trustattr.errors import DataError
from trustattr.preference_data import (
    HH_FILES,
    PreferencePair,
    is_eval_pair,
    load_preference_pairs,
    parse_hh_transcript,
)


def test_parse_single_turn():
    prompt, chosen, rejected = parse_hh_transcript(
        "\n\nHuman: Hi there\n\nAssistant: Hello!", "\n\nHuman: Hi there\n\nAssistant: Go away."
    )
    assert (prompt, chosen, rejected) == ("Human: Hi there\n\nAssistant:", "Hello!", "Go away.")


def test_parse_multi_turn_keeps_earlier_turns_in_the_prompt():
    history = "\n\nHuman: A?\n\nAssistant: B.\n\nHuman: C?\n\nAssistant:"
    prompt, chosen, rejected = parse_hh_transcript(history + " Yes.", history + " No.")
    assert prompt == history.lstrip()
    assert (chosen, rejected) == ("Yes.", "No.")


def test_parse_reply_that_contains_assistant_marker():
    # The chosen reply itself holds a later "\n\nAssistant:" (as in some HH rows): split at the shared one.
    history = "\n\nHuman: Price?\n\nAssistant:"
    chosen = history + " Umm. Just a second...\n\nAssistant: About $50."
    prompt, parsed_chosen, parsed_rejected = parse_hh_transcript(chosen, history + " Ask a dealer.")
    assert prompt == history.lstrip()
    assert parsed_chosen == "Umm. Just a second...\n\nAssistant: About $50."
    assert parsed_rejected == "Ask a dealer."


def test_parse_replies_sharing_their_first_words():
    history = "\n\nHuman: Q\n\nAssistant:"
    prompt, chosen, rejected = parse_hh_transcript(history + " I think so.", history + " I doubt it.")
    assert prompt == history.lstrip() and chosen == "I think so." and rejected == "I doubt it."


def test_parse_rejects_unrelated_transcripts():
    with pytest.raises(ValueError, match="share no"):
        parse_hh_transcript("\n\nHuman: a\n\nAssistant: b", "something else")


def test_shipped_hh_every_pair_reassembles_the_transcript():
    raw = [json.loads(line) for line in gzip.open(HH_FILES["hh-harmless"], "rt", encoding="utf-8")]
    pairs = load_preference_pairs("hh-harmless", split="all")
    assert 0 < len(raw) - len(pairs) <= 10  # only degenerate rows (empty reply) are dropped
    for pair in pairs:
        row = raw[int(pair.id.rsplit("-", 1)[1])]
        assert pair.prompt.endswith("Assistant:") and pair.prompt.startswith("Human:")
        assert row["chosen"].lstrip().startswith(pair.prompt)
        assert row["chosen"].endswith(pair.chosen) and row["rejected"].endswith(pair.rejected)
        assert pair.chosen != pair.rejected and pair.chosen and pair.rejected


def test_split_is_disjoint_complete_and_about_the_fraction():
    train = load_preference_pairs("hh", split="train")
    held_out = load_preference_pairs("hh", split="eval")
    everything = load_preference_pairs("hh", split="all")
    assert {p.id for p in train}.isdisjoint({p.id for p in held_out})
    assert len(train) + len(held_out) == len(everything)
    assert 0.08 < len(held_out) / len(everything) < 0.12
    assert {p.source for p in everything} == {"hh-harmless", "hh-helpful"}


def test_split_depends_on_text_only():
    pair = PreferencePair(id="a", prompt="Human: x\n\nAssistant:", chosen="y", rejected="z")
    renamed = PreferencePair(id="b", prompt=pair.prompt, chosen=pair.chosen, rejected="other", source="mine")
    assert is_eval_pair(pair, 0.5) == is_eval_pair(renamed, 0.5)


def test_limit_is_a_seeded_prefix():
    small = load_preference_pairs("hh", limit=5, seed=3)
    large = load_preference_pairs("hh", limit=20, seed=3)
    other_seed = load_preference_pairs("hh", limit=20, seed=4)
    assert [p.id for p in large[:5]] == [p.id for p in small]
    assert [p.id for p in large] != [p.id for p in other_seed]
    assert load_preference_pairs("hh", limit=20, seed=3) == large


def test_local_jsonl_with_explicit_fields_and_transcripts(tmp_path):
    path = tmp_path / "mine.jsonl"
    rows = [
        {"prompt": "Q1", "chosen": " good", "rejected": " bad"},
        {"chosen": "\n\nHuman: Q2\n\nAssistant: yes", "rejected": "\n\nHuman: Q2\n\nAssistant: no"},
        {"id": "custom", "prompt": "Q3", "chosen": "same", "rejected": "same"},  # degenerate: dropped
    ]
    path.write_text("\n".join(json.dumps(row) for row in rows) + "\n")
    pairs = load_preference_pairs(str(path), split="all")
    assert pairs == [
        # standard rows are kept verbatim, as trl reads them (prompt + chosen, no separator)
        PreferencePair(id="mine-0000", prompt="Q1", chosen=" good", rejected=" bad", source="mine", separator=""),
        PreferencePair(id="mine-0001", prompt="Human: Q2\n\nAssistant:", chosen="yes", rejected="no", source="mine"),
    ]


def test_local_json_array(tmp_path):
    path = tmp_path / "mine.json"
    path.write_text(json.dumps([{"id": 7, "prompt": "P", "chosen": "c", "rejected": "r"}]))
    assert load_preference_pairs(str(path), split="all")[0].id == "7"


def test_missing_field_names_file_row_and_field(tmp_path):
    path = tmp_path / "broken.jsonl"
    rows = [{"prompt": "P", "chosen": "c", "rejected": "r"}, {"prompt": "P", "chosen": "c"}]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    with pytest.raises(DataError, match=r"broken\.jsonl', row 1: missing field 'rejected'"):
        load_preference_pairs(str(path), split="all")


def test_bad_json_line_is_named(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"prompt": "P", "chosen": "c", "rejected": "r"}\n{oops\n')
    with pytest.raises(DataError, match="line 2"):
        load_preference_pairs(str(path), split="all")


def test_missing_file_and_empty_split(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_preference_pairs(str(tmp_path / "nope.jsonl"))
    path = tmp_path / "one.jsonl"
    path.write_text(json.dumps({"prompt": "P", "chosen": "c", "rejected": "r"}) + "\n")
    split_of_row = "eval" if is_eval_pair(PreferencePair("x", "P", "c", "r"), 0.5) else "train"
    empty_split = "train" if split_of_row == "eval" else "eval"
    with pytest.raises(DataError, match=f"no usable pairs in split '{empty_split}'"):
        load_preference_pairs(str(path), split=empty_split, eval_fraction=0.5)


def test_hub_names_go_through_datasets(monkeypatch):
    import datasets

    calls = []

    def fake_load_dataset(name, config=None, split=None, streaming=False):
        calls.append((name, config, split, streaming))
        return [{"prompt": "P", "chosen": "c", "rejected": "r"}]

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    pairs = load_preference_pairs("someone/prefs:test", split="all")
    assert calls == [("someone/prefs", None, "test", True)]
    assert pairs[0].id == "someone-prefs-0000"
    load_preference_pairs("someone/prefs:cfg:validation")
    assert calls[-1] == ("someone/prefs", "cfg", "validation", True)


def test_unreachable_hub_name_is_a_data_error(monkeypatch):
    import datasets

    def offline(name, config=None, split=None, streaming=False):
        raise ConnectionError("offline")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(DataError, match="not a shipped set"):
        load_preference_pairs("someone/prefs")


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"split": "test"}, "split"), ({"eval_fraction": 1.0}, "eval_fraction"), ({"limit": 0}, "limit")],
)
def test_bad_arguments_name_the_argument(kwargs, field):
    with pytest.raises(ValueError, match=field):
        load_preference_pairs("hh", **kwargs)
