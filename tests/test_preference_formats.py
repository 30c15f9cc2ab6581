"""Every preference format trl's DPOTrainer / RewardTrainer accept, from every local source ``datasets`` reads.

For each format, the token ids the attribution engine sees (``encode_pairs``, used by the DPO/SFT/reward losses)
must equal those trl's own DPOTrainer / RewardTrainer preprocessing (``_prepare_dataset``, called directly on the
raw row) produces, and equal those trl gets from the rows our training stages hand it (``preference_rows``).
"""

from __future__ import annotations

import json
import types

import pytest

from trustattr.attribution.encoding import encode_pairs
from trustattr.errors import DataError
from trustattr.models import load_tokenizer
from trustattr.preference_data import PreferencePair, load_preference_pairs, render_pair
from trustattr.train.data import fit_pairs, preference_rows, sft_rows

MAX_LENGTH, MAX_PROMPT_LENGTH = 512, 256  # nothing is cut: the comparison is of the tokenization alone


def _messages(*turns):
    return [{"role": role, "content": content} for role, content in turns]


STANDARD = [
    {"prompt": "Q: what is 2+2?\nA:", "chosen": " 4", "rejected": " 5"},
    {"prompt": "Translate 'chat':", "chosen": "cat", "rejected": "  dog!"},  # no space, two spaces: verbatim
    {"prompt": "Say hi", "chosen": "\nhi<|im_end|>", "rejected": "\nbye"},  # trl adds eos only when missing
]
IMPLICIT = [
    {"chosen": "Q: what is 2+2?\nA: 4", "rejected": "Q: what is 2+2?\nA: 5"},
    {"chosen": "The sky is blue today.", "rejected": "The sky is green today."},
]
CONVERSATIONAL = [
    {
        "prompt": _messages(("user", "What color is the sky?")),
        "chosen": _messages(("assistant", "It is blue.")),
        "rejected": _messages(("assistant", "It is green.")),
    },
    {
        "prompt": _messages(("system", "Be brief."), ("user", "Hi"), ("assistant", "Hello."), ("user", "Name?")),
        "chosen": _messages(("assistant", "SmolLM.")),
        "rejected": _messages(("assistant", "I will not say.")),
    },
]
CONVERSATIONAL_IMPLICIT = [
    {
        "chosen": _messages(("user", "Where is the sun?"), ("assistant", "In the sky.")),
        "rejected": _messages(("user", "Where is the sun?"), ("assistant", "In the sea.")),
    },
    {
        "chosen": _messages(("user", "A?"), ("assistant", "B."), ("user", "C?"), ("assistant", "Yes.")),
        "rejected": _messages(("user", "A?"), ("assistant", "B."), ("user", "C?"), ("assistant", "No.")),
    },
]
HH = [
    {"chosen": "\n\nHuman: Hi there\n\nAssistant: Hello!", "rejected": "\n\nHuman: Hi there\n\nAssistant: Go away."},
    {
        "chosen": "\n\nHuman: A?\n\nAssistant: B.\n\nHuman: C?\n\nAssistant: I think so.",
        "rejected": "\n\nHuman: A?\n\nAssistant: B.\n\nHuman: C?\n\nAssistant: I doubt it.",
    },
]


@pytest.fixture(scope="module")
def tokenizer():
    tok = load_tokenizer("tiny")
    assert tok.chat_template, "the tiny tokenizer ships SmolLM2's ChatML template"
    return tok


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return str(path)


def _trl_dpo(tokenizer, rows):
    """trl's DPOTrainer preprocessing of ``rows``: [(prompt_ids, chosen_ids, rejected_ids)]."""
    from datasets import Dataset
    from trl import DPOTrainer

    args = types.SimpleNamespace(dataset_num_proc=None, max_length=None, truncation_mode="keep_start")
    trainer = types.SimpleNamespace(_tokenizer=tokenizer)  # the only attribute _prepare_dataset reads
    dataset = DPOTrainer._prepare_dataset(trainer, Dataset.from_list(rows), tokenizer, args, "train")
    return [(row["prompt_ids"], row["chosen_ids"], row["rejected_ids"]) for row in dataset]


def _trl_reward(tokenizer, rows):
    """trl's RewardTrainer preprocessing of ``rows``: [(chosen_ids, rejected_ids)] (whole sequences)."""
    from datasets import Dataset
    from trl import RewardTrainer

    args = types.SimpleNamespace(dataset_num_proc=None, max_length=None)
    dataset = RewardTrainer._prepare_dataset(None, Dataset.from_list(rows), tokenizer, args, "train")
    return [(row["chosen_ids"], row["rejected_ids"]) for row in dataset]


def _ours(tokenizer, pairs):
    """What the attribution engine sees: [(prompt_len, chosen_ids, rejected_ids)] from encode_pairs."""
    rows = encode_pairs(tokenizer, pairs, ("chosen", "rejected"), MAX_LENGTH, MAX_PROMPT_LENGTH)
    n = len(pairs)
    out = []
    for i in range(n):
        ids = []
        for row in (i, n + i):
            length = int(rows.attention_mask[row].sum())
            ids.append(rows.input_ids[row, :length].tolist())
            start = int(rows.response_mask[row].long().argmax())
            assert rows.response_mask[row, start:length].all() and not rows.response_mask[row, length:].any()
        out.append((start, ids[0], ids[1]))
    return out


def _assert_same_tokens(tokenizer, pairs, trl_rows):
    ours = _ours(tokenizer, pairs)
    theirs = _trl_dpo(tokenizer, trl_rows)
    assert len(ours) == len(theirs) == len(pairs)
    for (start, chosen, rejected), (prompt_ids, chosen_ids, rejected_ids) in zip(ours, theirs):
        assert chosen == prompt_ids + chosen_ids
        assert rejected == prompt_ids + rejected_ids
        assert start == len(prompt_ids)
    for (_, chosen, rejected), (chosen_ids, rejected_ids) in zip(ours, _trl_reward(tokenizer, trl_rows)):
        assert (chosen, rejected) == (chosen_ids, rejected_ids)
    # what our training stages hand trl gives the same tokens again
    fitted = fit_pairs(tokenizer, pairs, types.SimpleNamespace(max_length=MAX_LENGTH, max_prompt_length=MAX_PROMPT_LENGTH))
    assert [t[1:] for t in _trl_dpo(tokenizer, preference_rows(fitted))] == [t[1:] for t in theirs]


@pytest.mark.parametrize(
    ("rows", "kind"),
    [(STANDARD, "standard"), (IMPLICIT, "implicit"), (CONVERSATIONAL, "conversational"),
     (CONVERSATIONAL_IMPLICIT, "conversational")],
    ids=["standard", "implicit", "conversational", "conversational-implicit"],
)
def test_tokens_equal_trls_own_processing(tmp_path, tokenizer, rows, kind):
    pairs = load_preference_pairs(_write_jsonl(tmp_path / "mine.jsonl", rows))
    assert len(pairs) == len(rows)
    assert all(p.is_conversational == (kind == "conversational") for p in pairs)
    assert all(p.separator == "" for p in pairs)
    _assert_same_tokens(tokenizer, pairs, rows)


def test_hh_transcripts_keep_their_convention_and_match_what_training_hands_trl(tmp_path, tokenizer):
    """HH rows are split at the shared "\\n\\nAssistant:" and joined with one space (the project's convention,
    unchanged): the attribution sees exactly what trl trains on from our preference rows. On the raw transcript
    row trl would cut at the first differing character ("...Assistant: I" | " think so.")."""
    pairs = load_preference_pairs(_write_jsonl(tmp_path / "hh.jsonl", HH))
    assert [p.prompt for p in pairs] == ["Human: Hi there\n\nAssistant:", "Human: A?\n\nAssistant: B.\n\nHuman: C?\n\nAssistant:"]
    assert all(p.separator == " " for p in pairs)
    _assert_same_tokens(tokenizer, pairs, preference_rows(pairs))
    # format="implicit" reads the same rows exactly as trl's extract_prompt does
    implicit = load_preference_pairs(str(tmp_path / "hh.jsonl"), format="implicit")
    assert implicit[1].prompt.endswith("Assistant: I") and implicit[1].chosen == " think so."
    _assert_same_tokens(tokenizer, implicit, HH)


def test_rendered_conversational_pair_is_trls_chat_template_text(tokenizer):
    from trl.data_utils import apply_chat_template, maybe_extract_prompt

    row = CONVERSATIONAL_IMPLICIT[1]
    messages = maybe_extract_prompt(row)
    expected = apply_chat_template(messages, tokenizer)
    from trustattr.preference_data import _row_to_pair

    rendered = render_pair(tokenizer, _row_to_pair(row, "row 0", 0, "x", "auto"))
    assert (rendered.prompt, rendered.chosen, rendered.rejected) == (
        expected["prompt"], expected["chosen"], expected["rejected"])
    assert rendered.prompt.endswith("<|im_start|>assistant\n") and rendered.chosen == "Yes.<|im_end|>\n"
    assert render_pair(tokenizer, rendered) == rendered  # idempotent
    # the unrendered text is a plain transcript for reports
    assert _row_to_pair(row, "row 0", 0, "x", "auto").prompt == "User: A?\n\nAssistant: B.\n\nUser: C?"


def test_conversational_rows_go_to_trl_as_messages(tmp_path):
    pairs = load_preference_pairs(_write_jsonl(tmp_path / "conv.jsonl", CONVERSATIONAL))
    assert preference_rows(pairs)[0] == CONVERSATIONAL[0]
    assert sft_rows(pairs)[0] == {"prompt": CONVERSATIONAL[0]["prompt"], "completion": CONVERSATIONAL[0]["chosen"]}
    text = load_preference_pairs(_write_jsonl(tmp_path / "text.jsonl", STANDARD))
    with pytest.raises(DataError, match="mix conversational and text"):
        preference_rows(pairs + text)


# ------------------------------------------------------------------------------------------------- sources
def _write_all_sources(tmp_path, rows):
    import pyarrow as pa
    import pyarrow.ipc
    from datasets import Dataset, DatasetDict

    dataset = Dataset.from_list(rows)
    import gzip

    paths = {"jsonl": _write_jsonl(tmp_path / "d.jsonl", rows)}
    with gzip.open(tmp_path / "d.jsonl.gz", "wt", encoding="utf-8") as handle:
        handle.write("".join(json.dumps(row) + "\n" for row in rows))
    paths["jsonl.gz"] = str(tmp_path / "d.jsonl.gz")
    (tmp_path / "d.json").write_text(json.dumps(rows), encoding="utf-8")
    paths["json"] = str(tmp_path / "d.json")
    dataset.to_parquet(str(tmp_path / "d.parquet"))
    paths["parquet"] = str(tmp_path / "d.parquet")
    table = pa.Table.from_pylist(rows)
    with pa.OSFile(str(tmp_path / "d.arrow"), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    paths["arrow"] = str(tmp_path / "d.arrow")
    dataset.save_to_disk(str(tmp_path / "saved"))
    paths["save_to_disk"] = str(tmp_path / "saved")
    DatasetDict({"train": dataset, "test": dataset.select([0])}).save_to_disk(str(tmp_path / "saved_dict"))
    paths["save_to_disk_dict"] = str(tmp_path / "saved_dict")
    return paths


@pytest.mark.parametrize("rows", [STANDARD, CONVERSATIONAL], ids=["text", "conversational"])
def test_every_local_source_gives_the_same_pairs(tmp_path, rows):
    paths = _write_all_sources(tmp_path, rows)
    if isinstance(rows[0]["chosen"], str):
        import csv

        with open(tmp_path / "d.csv", "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        paths["csv"] = str(tmp_path / "d.csv")
    reference = load_preference_pairs(paths["jsonl"])
    assert len(reference) == len(rows)
    for kind, path in paths.items():
        pairs = load_preference_pairs(path)
        fields = lambda ps: [(p.prompt, p.chosen, p.rejected, p.separator, p.messages) for p in ps]  # noqa: E731
        assert fields(pairs) == fields(reference), kind


def test_user_files_are_used_whole_unless_a_split_is_asked(tmp_path):
    rows = [{"prompt": f"P{i}", "chosen": f" yes {i}", "rejected": f" no {i}"} for i in range(40)]
    path = _write_jsonl(tmp_path / "many.jsonl", rows)
    assert len(load_preference_pairs(path)) == 40
    train, held_out = load_preference_pairs(path, split="train"), load_preference_pairs(path, split="eval")
    assert len(train) + len(held_out) == 40 and held_out


def test_limit_on_a_user_file_is_a_seeded_prefix(tmp_path):
    rows = [{"prompt": f"P{i}", "chosen": f" yes {i}", "rejected": f" no {i}"} for i in range(50)]
    path = _write_jsonl(tmp_path / "many.jsonl", rows)
    small, large = load_preference_pairs(path, limit=5, seed=1), load_preference_pairs(path, limit=20, seed=1)
    assert [p.id for p in large[:5]] == [p.id for p in small]
    assert [p.id for p in load_preference_pairs(path, limit=20, seed=2)] != [p.id for p in large]
    assert load_preference_pairs(path, limit=20, seed=1) == large


# --------------------------------------------------------------------------------------------- malformed rows
MALFORMED = {
    "standard-prompt-not-text": (
        [STANDARD[0], {"prompt": 5, "chosen": "a", "rejected": "b"}], "auto",
        r"bad\.jsonl', row 1: field 'prompt': expected text, got int 5",
    ),
    "standard-missing-rejected": (
        [STANDARD[0], {"prompt": "P", "chosen": "a"}], "auto", r"row 1: missing field 'rejected'",
    ),
    "standard-forced-without-prompt": (
        [IMPLICIT[0]], "standard", r"row 0: missing field 'prompt'",
    ),
    "implicit-no-shared-prefix": (
        [IMPLICIT[0], {"chosen": "yes", "rejected": "no"}], "auto",
        r"row 1: fields 'chosen'/'rejected' \(implicit prompt\): expected the same prompt text",
    ),
    "conversational-message-without-content": (
        [CONVERSATIONAL[0], {**CONVERSATIONAL[0], "chosen": [{"role": "assistant"}]}], "auto",
        r"row 1: field 'chosen', message 0: expected text 'content', got nothing",
    ),
    "conversational-empty-messages": (
        [CONVERSATIONAL[0], {**CONVERSATIONAL[0], "rejected": []}], "auto",
        r"row 1: field 'rejected': expected a non-empty list of \{role, content\} messages",
    ),
    "conversational-system-last": (
        [{**CONVERSATIONAL[0], "prompt": _messages(("system", "x"))}], "auto",
        r"row 0: field 'prompt': expected the last prompt message from 'user', 'tool' or 'assistant', got role 'system'",
    ),
    "conversational-implicit-no-shared-message": (
        [{"chosen": _messages(("user", "a"), ("assistant", "b")), "rejected": _messages(("user", "c"), ("assistant", "d"))}],
        "auto", r"row 0: fields 'chosen'/'rejected' \(implicit prompt\): expected conversations that share",
    ),
    "conversational-forced-on-text": (
        [STANDARD[0]], "conversational", r"row 0: field 'chosen': expected a non-empty list of \{role, content\}",
    ),
    "conversational-string-reply": (
        [{"prompt": _messages(("user", "q")), "chosen": "text", "rejected": "text2"}], "auto",
        r"row 0: field 'chosen': expected a non-empty list of \{role, content\} messages, got str 'text'",
    ),
    "hh-forced-without-assistant-turn": (
        [IMPLICIT[1]], "hh", r"row 0: fields 'chosen'/'rejected': expected HH transcripts",
    ),
    "type-changes-between-rows": (
        [STANDARD[0], STANDARD[1], {"prompt": "P", "chosen": 7, "rejected": "b"}], "auto",
        r"row 2: field 'chosen': expected text, got int 7",
    ),
    "not-an-object": ([STANDARD[0], [1, 2]], "auto", r"line 2: expected a JSON object, got list"),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_rows_give_one_line_naming_file_row_and_field(tmp_path, case):
    rows, format, message = MALFORMED[case]
    path = _write_jsonl(tmp_path / "bad.jsonl", rows)
    with pytest.raises(DataError, match=message) as error:
        load_preference_pairs(path, format=format)
    assert "\n" not in str(error.value) and "bad.jsonl" in str(error.value)


def test_malformed_parquet_and_csv_rows(tmp_path):
    import csv

    from datasets import Dataset

    Dataset.from_list([{"prompt": "P", "chosen": 1, "rejected": 2}]).to_parquet(str(tmp_path / "bad.parquet"))
    with pytest.raises(DataError, match=r"bad\.parquet', row 0: field 'chosen': expected text, got int 1"):
        load_preference_pairs(str(tmp_path / "bad.parquet"))
    with open(tmp_path / "bad.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerows([["prompt", "chosen", "rejected"], ["P", "a", "b"], ["P", "a", ""]])
    with pytest.raises(DataError, match=r"bad\.csv', row 1: missing field 'rejected'"):
        load_preference_pairs(str(tmp_path / "bad.csv"))


def test_missing_and_unreadable_sources(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_preference_pairs(str(tmp_path / "nope.parquet"))
    (tmp_path / "empty_folder").mkdir()
    with pytest.raises(DataError, match="is not a datasets save_to_disk folder"):
        load_preference_pairs(str(tmp_path / "empty_folder"))
    (tmp_path / "garbage.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(DataError, match=r"garbage\.parquet' cannot be read as parquet"):
        load_preference_pairs(str(tmp_path / "garbage.parquet"))


def test_preference_pair_defaults_are_the_hh_convention():
    pair = PreferencePair(id="a", prompt="Human: x\n\nAssistant:", chosen="y", rejected="z")
    assert pair.separator == " " and not pair.is_conversational


# --------------------------------------------------------------------------------------------- large files
MEMORY_SCRIPT = r"""
import json, resource, sys
from trustattr.preference_data import load_preference_pairs
load_preference_pairs(sys.argv[2], limit=2)  # warm-up: lazy imports and reader set-up count in the base
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
pairs = load_preference_pairs(sys.argv[1], limit=10, seed=0)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"pairs": len(pairs), "delta_mb": (peak - base) / 1024}))
"""


@pytest.mark.slow
def test_a_large_jsonl_is_streamed_in_bounded_memory(tmp_path):
    """Taking 10 pairs of a ~50 MB JSONL raises the peak RSS by < 40 MB: less than the file itself, so the file
    is never held whole. Measured (2-core machine, this script): 3.7 MB for a 50 MB and for a 150 MB file; the
    loader that read files whole: 168 MB / 508 MB peak delta without warm-up, as many MB as file bytes and more."""
    import os
    import subprocess
    import sys

    row_text = " ".join(["the quick brown fox jumps over a lazy dog"] * 8)
    big = tmp_path / "big.jsonl"
    with open(big, "w", encoding="utf-8") as handle:
        index = 0
        while handle.tell() < 50 * 2**20:
            handle.write(json.dumps({"prompt": f"Q{index}: {row_text}", "chosen": f" yes {index}", "rejected": " no"}) + "\n")
            index += 1
    small = _write_jsonl(tmp_path / "small.jsonl", STANDARD)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT, str(big), small], capture_output=True, text=True,
                            env=env, timeout=600, check=True)
    measured = json.loads(result.stdout.strip().splitlines()[-1])
    assert measured["pairs"] == 10
    assert measured["delta_mb"] < 40, measured


def test_long_reads_report_rows_per_second(tmp_path, monkeypatch):
    import trustattr.preference_data as preference_data

    monkeypatch.setattr(preference_data, "PROGRESS_SECONDS", 0.0)
    lines = []
    load_preference_pairs(_write_jsonl(tmp_path / "d.jsonl", STANDARD), progress=lines.append)
    assert lines and all("rows/s" in line and "d.jsonl" in line for line in lines)
    assert "3 rows read in" in lines[-1]


def test_score_split_defaults_to_the_whole_file_for_user_data():
    from trustattr.attribution.arguments import ScoreArguments
    from trustattr.preference_data import is_shipped

    assert ScoreArguments().split is None and "all for your own file" in ScoreArguments.__dataclass_fields__[
        "split"].metadata["help"]
    assert ScoreArguments(split="eval").split == "eval"
    with pytest.raises(ValueError, match="split"):
        ScoreArguments(split="test")
    assert is_shipped("hh") and is_shipped("hh-helpful") and not is_shipped("mine.jsonl")


@pytest.mark.parametrize("text", ["", "\n\n"], ids=["empty", "blank-lines"])
def test_an_empty_file_has_no_usable_pairs(tmp_path, text):
    (tmp_path / "e.jsonl").write_text(text)
    with pytest.raises(DataError, match="no usable pairs in split 'all'"):
        load_preference_pairs(str(tmp_path / "e.jsonl"))


def test_conversational_pairs_read_plainly_in_reports(tmp_path):
    pair = load_preference_pairs(_write_jsonl(tmp_path / "conv.jsonl", CONVERSATIONAL))[1]
    assert pair.prompt == "System: Be brief.\n\nUser: Hi\n\nAssistant: Hello.\n\nUser: Name?"
    assert (pair.chosen, pair.rejected) == ("SmolLM.", "I will not say.")
