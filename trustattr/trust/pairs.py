"""The paper's test-side pairs: a model's generation after a stage (chosen) vs before it (rejected).

Both sides come from ``outputs.jsonl`` files written by :func:`trustattr.trust.evaluate` for the same benchmark,
protocol and seed; they are joined by (prompt id, sample index). The pair's prompt is the benchmark prompt as
plain text in HH form ("Human: ...\\n\\nAssistant:"), like the preference pairs the stage was trained on.
For toxicity the kept first sentence (``continuation``) is used, as in the paper.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trustattr.errors import DataError
from trustattr.trust.base import hh_prompt, subsample
from trustattr.trust.store import read_jsonl_records

__all__ = ["paper_pairs"]


def _records(outputs: str | Path | list[dict[str, Any]], side: str) -> list[dict[str, Any]]:
    if isinstance(outputs, list):
        return outputs
    path = Path(outputs)
    if path.is_dir():
        path = path / "outputs.jsonl"
    if not path.exists():
        raise DataError(f"{side}_outputs: '{path}' does not exist (expected a benchmark's outputs.jsonl or its folder)")
    return read_jsonl_records(path)


def _answer(record: dict[str, Any]) -> str:
    return str(record.get("continuation", record["generation"])).strip()


def paper_pairs(
    after_outputs: str | Path | list[dict[str, Any]],
    before_outputs: str | Path | list[dict[str, Any]],
    limit: int | None = None,
    seed: int = 0,
) -> list[Any]:
    """PreferencePair(chosen = post-stage generation, rejected = pre-stage generation) per shared prompt/sample.

    Pairs where either side is empty or both are identical carry no preference and are dropped. ``limit`` keeps
    a seeded subset (see :func:`trustattr.trust.base.subsample`).
    """
    from trustattr.preference_data import PreferencePair

    after, before = _records(after_outputs, "after"), _records(before_outputs, "before")
    before_by_key = {(r["prompt_id"], r.get("sample", 0)): r for r in before}
    pairs = []
    for record in after:
        key = (record["prompt_id"], record.get("sample", 0))
        old = before_by_key.get(key)
        if old is None:
            continue
        if old.get("plain_prompt") != record.get("plain_prompt"):
            raise DataError(f"prompt '{key[0]}' differs between the before and after outputs: they were made with "
                            "different benchmark protocols or data")
        chosen, rejected = _answer(record), _answer(old)
        if not chosen or not rejected or chosen == rejected:
            continue
        benchmark = record.get("benchmark", "trust")
        pairs.append(PreferencePair(id=f"{benchmark}-{key[0]}-s{key[1]}", prompt=hh_prompt(record["plain_prompt"]),
                                    chosen=chosen, rejected=rejected, source=f"paper-{benchmark}"))
    if not pairs and after and before:
        shared = len(set(before_by_key) & {(r["prompt_id"], r.get("sample", 0)) for r in after})
        if not shared:
            raise DataError("the before and after outputs share no (prompt_id, sample): run both models with the "
                            "same benchmark, protocol, limit and seed")
    return subsample(pairs, limit, seed, "paper_pairs")
