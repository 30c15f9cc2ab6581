"""Preference pairs (prompt, chosen, rejected): the shipped HH-RLHF data, local JSONL/JSON files, hub datasets.

HH-RLHF rows are two full transcripts, ``"\\n\\nHuman: … \\n\\nAssistant: …"``, that share every turn but the
last assistant reply. :func:`parse_hh_transcript` splits them at the last ``"\\n\\nAssistant:"`` of their common
prefix, so multi-turn conversations and replies that themselves contain ``"Assistant:"`` are handled.

Conventions (shared by every stage and by the attribution engine):
    * ``prompt`` ends with ``"Assistant:"`` (no trailing space) and has its leading whitespace stripped;
    * ``chosen`` / ``rejected`` have their leading whitespace stripped; a model sees ``prompt + " " + response``;
    * degenerate pairs (an empty response, or chosen == rejected) are dropped, since they carry no preference;
    * the train/eval split is a pure function of the pair's text (sha1 of prompt and chosen), so it does not
      depend on ``seed``, ``limit`` or the order of the file; ``limit`` takes the first ``limit`` pairs of a
      seeded permutation (so a smaller limit is a prefix of a larger one); without ``limit`` the file order is kept.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import json
import os
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from trustattr.errors import DataError
from trustattr.paths import DATA_DIR

__all__ = [
    "HH_FILES",
    "PreferencePair",
    "is_eval_pair",
    "load_preference_pairs",
    "parse_hh_transcript",
]

ASSISTANT_MARK = "\n\nAssistant:"
HH_DIR = DATA_DIR / "hh_rlhf"
HH_FILES = {
    "hh-harmless": HH_DIR / "harmless-base.test.jsonl.gz",
    "hh-helpful": HH_DIR / "helpful-base.test.jsonl.gz",
}
SPLITS = ("train", "eval", "all")


@dataclass(frozen=True)
class PreferencePair:
    """One preference triple; ``id`` is stable across runs (file stem + row number, or the row's own id)."""

    id: str
    prompt: str
    chosen: str
    rejected: str
    source: str = "hh"


def parse_hh_transcript(chosen: str, rejected: str) -> tuple[str, str, str]:
    """Split two HH transcripts that differ only in the final reply into (prompt, chosen, rejected).

    The prompt runs up to and including the last ``"\\n\\nAssistant:"`` that both transcripts share.
    Raises ValueError when the transcripts share no assistant turn.
    """
    common = os.path.commonprefix([chosen, rejected])
    cut = common.rfind(ASSISTANT_MARK)
    if cut < 0:
        raise ValueError("the chosen and rejected transcripts share no '\\n\\nAssistant:' turn")
    end = cut + len(ASSISTANT_MARK)
    return chosen[:end].lstrip(), chosen[end:].lstrip(), rejected[end:].lstrip()


def is_eval_pair(pair: PreferencePair, eval_fraction: float) -> bool:
    """Deterministic split: the first 8 bytes of sha1(prompt, chosen) as a number in [0, 1) < eval_fraction."""
    digest = hashlib.sha1(f"{pair.prompt}\x00{pair.chosen}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < eval_fraction


def load_preference_pairs(
    source: str = "hh",
    split: str = "train",
    limit: int | None = None,
    seed: int = 0,
    eval_fraction: float = 0.1,
) -> list[PreferencePair]:
    """Load, split and subsample preference pairs.

    Args:
        source: ``"hh"`` (both shipped HH-RLHF files), ``"hh-helpful"``, ``"hh-harmless"``, a local ``.jsonl`` /
            ``.json`` / ``.jsonl.gz`` path (rows with prompt/chosen/rejected, or HH's chosen/rejected transcripts),
            or a ``datasets`` hub name, optionally ``name:split`` (default hub split ``train``).
        split: ``"train"``, ``"eval"`` or ``"all"``.
        limit: keep the first ``limit`` pairs of a seeded permutation; None keeps all, in file order.
        seed: seed of that permutation.
        eval_fraction: share of pairs that fall in the eval split, in (0, 1).
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}; got {split!r}")
    if not 0.0 < eval_fraction < 1.0:
        raise ValueError(f"eval_fraction must be in (0, 1); got {eval_fraction}")
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be a positive integer or None; got {limit}")
    pairs = _dedupe_ids(_load_source(source))
    if split != "all":
        want_eval = split == "eval"
        pairs = [pair for pair in pairs if is_eval_pair(pair, eval_fraction) == want_eval]
    if not pairs:
        raise DataError(f"preference data '{source}' has no usable pairs in split '{split}'")
    if limit is not None:
        order = list(range(len(pairs)))
        random.Random(seed).shuffle(order)
        pairs = [pairs[i] for i in order[:limit]]
    return pairs


def _load_source(source: str) -> list[PreferencePair]:
    if source == "hh":
        return [pair for name in HH_FILES for pair in _load_shipped(name)]
    if source in HH_FILES:
        return list(_load_shipped(source))
    path = Path(os.path.expanduser(source))
    if path.suffix in (".jsonl", ".json", ".gz") or path.exists():
        if not path.is_file():
            raise DataError(f"preference data file '{source}' does not exist")
        return list(_load_file(path, _stem(path)))
    return list(_load_hub(source))


@functools.lru_cache(maxsize=len(HH_FILES))
def _load_shipped(name: str) -> tuple[PreferencePair, ...]:
    """The shipped files are read once per process (pairs are immutable)."""
    return tuple(_load_file(HH_FILES[name], name))


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".gz", ".jsonl", ".json"):
        name = name.removesuffix(suffix)
    return name


def _load_file(path: Path, prefix: str) -> Iterator[PreferencePair]:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as handle:
            text = handle.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"preference data file '{path}' cannot be read: {exc}") from exc
    yield from _rows_to_pairs(_parse_rows(text, path), str(path), prefix)


def _parse_rows(text: str, path: Path) -> Iterator[dict]:
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            rows = json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise DataError(f"preference data file '{path}' is not valid JSON: {exc}") from exc
        yield from rows
        return
    for line_number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"preference data file '{path}', line {line_number}: not valid JSON ({exc})") from exc


def _load_hub(source: str) -> Iterator[PreferencePair]:
    name, _, hub_split = source.partition(":")
    try:
        import datasets

        dataset = datasets.load_dataset(name, split=hub_split or "train")
    except Exception as exc:  # datasets raises many types (ConnectionError, FileNotFoundError, DatasetNotFoundError)
        raise DataError(
            f"preference data '{source}' is not a shipped set (hh, hh-helpful, hh-harmless), not a local file, "
            f"and could not be loaded with datasets.load_dataset: {exc}"
        ) from exc
    yield from _rows_to_pairs(iter(dataset), source, name.replace("/", "-"))


def _rows_to_pairs(rows: Iterable[dict], origin: str, prefix: str) -> Iterator[PreferencePair]:
    for index, row in enumerate(rows):
        where = f"preference data '{origin}', row {index}"
        if not isinstance(row, dict):
            raise DataError(f"{where}: expected a JSON object, got {type(row).__name__}")
        for key in ("chosen", "rejected"):
            if not isinstance(row.get(key), str):
                raise DataError(f"{where}: missing text field '{key}' (fields present: {sorted(row)})")
        if "prompt" in row:
            if not isinstance(row["prompt"], str):
                raise DataError(f"{where}: field 'prompt' must be text, got {type(row['prompt']).__name__}")
            prompt, chosen, rejected = row["prompt"].strip(), row["chosen"].lstrip(), row["rejected"].lstrip()
        else:
            try:
                prompt, chosen, rejected = parse_hh_transcript(row["chosen"], row["rejected"])
            except ValueError as exc:
                raise DataError(f"{where}: no 'prompt' field and not an HH transcript pair: {exc}") from exc
        if not chosen.strip() or not rejected.strip() or chosen.strip() == rejected.strip():
            continue  # degenerate pair: no preference to learn
        pair_id = str(row["id"]) if "id" in row else f"{prefix}-{index:04d}"
        yield PreferencePair(id=pair_id, prompt=prompt, chosen=chosen, rejected=rejected, source=prefix)


def _dedupe_ids(pairs: list[PreferencePair]) -> list[PreferencePair]:
    seen: set[str] = set()
    for pair in pairs:
        if pair.id in seen:
            raise DataError(f"preference data has the id '{pair.id}' twice; ids must be unique")
        seen.add(pair.id)
    return pairs
