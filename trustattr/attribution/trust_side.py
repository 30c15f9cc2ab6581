"""The test side: per trust benchmark, the preference pairs whose mean gradient is the query (INTERFACES.md B).

    target  the benchmark's own (trustworthy = chosen, untrustworthy = rejected) answer per prompt
    paper   (policy's generation = chosen, reference's generation = rejected) per prompt, the paper's
            pseudo pairs (paper.md §4.4); needs both models' generations (trustattr.trust.evaluate)

``direction`` says which side of the test pairs is the trustworthy one: +1 when ``chosen`` is (always for
``target``); for ``paper`` +1 when the stage made the benchmark's headline metric better, -1 when worse,
0 when it did not move (the trust sign is then unknown).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from trustattr.preference_data import PreferencePair
from trustattr.trust import BENCHMARKS, evaluate, get_benchmark, paper_pairs

__all__ = ["BENCHMARK_NAMES", "TestSide", "paper_test_pairs", "target_test_pairs"]

BENCHMARK_NAMES: tuple[str, ...] = tuple(BENCHMARKS)


def _cap(pairs: list[PreferencePair], limit: int, seed: int) -> list[PreferencePair]:
    """At most ``limit`` pairs, a seeded sample mixing the benchmark's pools, in their original order."""
    if len(pairs) <= limit:
        return pairs
    keep = sorted(random.Random(seed).sample(range(len(pairs)), limit))
    return [pairs[i] for i in keep]


def target_test_pairs(name: str, limit: int, seed: int = 0) -> list[PreferencePair]:
    """The benchmark's (trustworthy, untrustworthy) answer pairs, at most ``limit``."""
    return _cap(list(get_benchmark(name).target_pairs(limit, seed)), limit, seed)


def metric_direction(before: dict[str, Any], after: dict[str, Any]) -> int:
    """+1 / -1 / 0: did the headline metric get better / worse / stay (summaries of trustattr.trust.evaluate)."""
    b, a = before["headline"]["value"], after["headline"]["value"]
    if a is None or b is None or a == b:
        return 0
    better = (a > b) == bool(after["headline"]["higher_is_better"])
    return 1 if better else -1


class TestSide:
    """Test pairs and trust direction per benchmark."""

    def __init__(self, pairs: dict[str, list[PreferencePair]], directions: dict[str, int],
                 notes: dict[str, str] | None = None) -> None:
        self.pairs, self.directions, self.notes = pairs, directions, notes or {}


def paper_test_pairs(
    names: Sequence[str], *, policy: Any, reference: Any, tokenizer: Any, eval_dir: Path, limit: int, seed: int,
    max_new_tokens: int, batch_size: int,
) -> TestSide:
    """Generate with both models (resumable, under ``eval_dir``/before and /after) and pair the generations."""
    overrides = {name: {"max_new_tokens": max_new_tokens} for name in names}
    summaries = {}
    for stage, model in (("before", reference), ("after", policy)):
        evaluate(model, tokenizer, out_dir=eval_dir / stage, benchmarks=list(names), limit=limit, seed=seed,
                 batch_size=batch_size, model_name=stage, progress=False, **overrides)
        summaries[stage] = {name: _summary(eval_dir / stage / name) for name in names}
    pairs, directions = {}, {}
    for name in names:
        pairs[name] = _cap(paper_pairs(eval_dir / "after" / name / "outputs.jsonl",
                                       eval_dir / "before" / name / "outputs.jsonl"), limit, seed)
        directions[name] = metric_direction(summaries["before"][name], summaries["after"][name])
    return TestSide(pairs, directions)


def _summary(benchmark_dir: Path) -> dict[str, Any]:
    import json

    return json.loads((benchmark_dir / "metrics.json").read_text())


def target_test_side(names: Sequence[str], limit: int, seed: int) -> TestSide:
    return TestSide({name: target_test_pairs(name, limit, seed) for name in names}, {name: 1 for name in names})
