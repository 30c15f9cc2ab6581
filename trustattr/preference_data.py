"""Preference pairs (prompt, chosen, rejected) in every format trl's DPOTrainer / RewardTrainer accept.

Sources (all read through ``datasets``): the shipped HH-RLHF files (``hh``, ``hh-helpful``, ``hh-harmless``); a
local ``.jsonl`` / ``.json`` (optionally ``.gz``), ``.parquet``, ``.csv`` or ``.arrow`` file, streamed so that a
large file is read in bounded memory; a folder written by ``Dataset.save_to_disk`` / ``DatasetDict.save_to_disk``;
a hub dataset ``name``, ``name:split`` or ``name:config:split`` (default split ``train``).

Row formats, detected per row (``format="auto"``) or forced with ``format=``:
    * **standard**: ``prompt`` / ``chosen`` / ``rejected`` strings, kept verbatim: the model reads
      ``prompt + chosen + eos`` exactly as trl builds it (no separator, no stripping).
    * **implicit prompt**: ``chosen`` / ``rejected`` strings only; the shared prefix becomes the prompt with
      trl's own :func:`trl.data_utils.extract_prompt`.
    * **conversational**: ``chosen`` / ``rejected`` (and optionally ``prompt``) as lists of ``{"role",
      "content"}`` messages, explicit or implicit prompt (trl's ``maybe_extract_prompt``). The pair keeps its
      messages; the model's chat template is applied when the pair meets a tokenizer
      (:func:`render_pair`, with trl's ``apply_chat_template``), so it needs no tokenizer to load.
    * **hh**: HH-RLHF transcripts (``chosen`` / ``rejected`` strings starting ``"Human:"`` that share a
      ``"\\n\\nAssistant:"`` turn). :func:`parse_hh_transcript` splits them at the last ``"\\n\\nAssistant:"`` of
      their common prefix, so multi-turn conversations and replies that themselves contain ``"Assistant:"`` are
      handled. This is the project's convention since its first version, kept so that the shipped data gives
      the same tokens as before: the prompt ends with ``"Assistant:"`` (leading whitespace stripped), the
      responses are stripped on the left and the model reads ``prompt + " " + response + eos``. (trl's
      ``extract_prompt`` on the same row cuts at the first differing character instead, which can move the first
      shared words of both replies into the prompt; pass ``format="implicit"`` to get exactly that.)

Conventions shared by every stage and by the attribution engine:
    * degenerate pairs (an empty response, or chosen == rejected) are dropped, since they carry no preference;
    * the train/eval split is a pure function of the pair's text (sha1 of prompt and chosen). It applies by
      default to the shipped data only (``split=None``: ``"train"`` for shipped data, ``"all"`` for anything
      else), so a user's file is used whole unless a split is asked for;
    * ``limit`` on the shipped data takes the first ``limit`` pairs of a seeded permutation (as always); on any
      other source it keeps the ``limit`` pairs with the smallest seeded hash of their id, chosen while streaming
      (bounded memory). Either way a smaller limit is a prefix of a larger one. Without ``limit`` the file order
      is kept.
"""

from __future__ import annotations

import functools
import hashlib
import heapq
import json
import logging
import os
import random
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from trustattr.errors import DataError
from trustattr.paths import DATA_DIR

__all__ = [
    "FORMATS",
    "HH_FILES",
    "PreferencePair",
    "is_eval_pair",
    "is_shipped",
    "load_preference_pairs",
    "parse_hh_transcript",
    "render_pair",
]

logger = logging.getLogger(__name__)

ASSISTANT_MARK = "\n\nAssistant:"
HH_SEPARATOR = " "
HH_DIR = DATA_DIR / "hh_rlhf"
HH_FILES = {
    "hh-harmless": HH_DIR / "harmless-base.test.jsonl.gz",
    "hh-helpful": HH_DIR / "helpful-base.test.jsonl.gz",
}
SPLITS = ("train", "eval", "all")
FORMATS = ("auto", "standard", "implicit", "conversational", "hh")
FILE_BUILDERS = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".csv": "csv", ".arrow": "arrow"}
JSON_CHUNK_BYTES = 1 << 20  # datasets' JSON reader parses this much at a time (its default, 10 MB, peaks ~5x higher)
PROGRESS_SECONDS = 10.0  # a long read logs rows and rows/s this often

Messages = tuple[dict, ...]


@dataclass(frozen=True)
class PreferencePair:
    """One preference triple; ``id`` is stable across runs (file stem + row number, or the row's own id).

    The model reads ``prompt + separator + chosen`` (and the tokenizer's eos for text rows). ``separator`` is
    ``" "`` for HH transcripts and ``""`` for every trl format. A conversational pair carries ``messages``
    (prompt, chosen, rejected message tuples); its text fields hold a plain ``role: content`` rendering for
    reports until :func:`render_pair` replaces them with the chat template's text.
    """

    id: str
    prompt: str
    chosen: str
    rejected: str
    source: str = "hh"
    separator: str = HH_SEPARATOR
    messages: tuple[Messages, Messages, Messages] | None = field(default=None, hash=False, repr=False)

    @property
    def is_conversational(self) -> bool:
        return self.messages is not None


def render_pair(tokenizer: Any, pair: PreferencePair) -> PreferencePair:
    """A conversational pair with the tokenizer's chat template applied exactly as trl applies it.

    ``prompt`` becomes the templated prompt (with the generation prompt), ``chosen`` / ``rejected`` the rest of
    each templated conversation (trl's :func:`trl.data_utils.apply_chat_template`); the messages are kept, so
    rendering is idempotent. Text pairs are returned unchanged.
    """
    if getattr(pair, "messages", None) is None:
        return pair
    from trl.data_utils import apply_chat_template

    if getattr(tokenizer, "chat_template", None) is None:
        raise DataError(f"pair '{pair.id}' is conversational but the tokenizer has no chat template")
    prompt, chosen, rejected = ([dict(m) for m in part] for part in pair.messages)
    try:
        out = apply_chat_template({"prompt": prompt, "chosen": chosen, "rejected": rejected}, tokenizer)
    except Exception as exc:  # jinja errors of the template (e.g. roles it does not accept)
        raise DataError(f"pair '{pair.id}': the chat template failed: {exc}") from exc
    return replace(pair, prompt=out["prompt"], chosen=out["chosen"], rejected=out["rejected"], separator="")


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


def is_shipped(source: str) -> bool:
    """Whether ``source`` names the shipped HH-RLHF data (the only data split by default)."""
    return source == "hh" or source in HH_FILES


def load_preference_pairs(
    source: str = "hh",
    split: str | None = None,
    limit: int | None = None,
    seed: int = 0,
    eval_fraction: float = 0.1,
    format: str = "auto",
    progress: Callable[[str], None] | None = None,
) -> list[PreferencePair]:
    """Load, split and subsample preference pairs.

    Args:
        source: ``"hh"`` (both shipped HH-RLHF files), ``"hh-helpful"``, ``"hh-harmless"``, a local
            ``.jsonl`` / ``.json`` (``.gz``) / ``.parquet`` / ``.csv`` / ``.arrow`` file, a ``save_to_disk``
            folder, or a ``datasets`` hub name ``name[:config]:split`` (default split ``train``).
        split: ``"train"``, ``"eval"``, ``"all"``, or None: ``"train"`` for the shipped data, ``"all"`` otherwise.
        limit: how many pairs to keep (see the module docstring); None keeps all, in file order.
        seed: seed of the subsample.
        eval_fraction: share of pairs that fall in the eval split, in (0, 1).
        format: ``"auto"`` (per row) or one of ``standard``, ``implicit``, ``conversational``, ``hh``.
        progress: called with a line every ~10 s of a long read (default: the module's logger at INFO).
    """
    if split is None:
        split = "train" if is_shipped(source) else "all"
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}; got {split!r}")
    if not 0.0 < eval_fraction < 1.0:
        raise ValueError(f"eval_fraction must be in (0, 1); got {eval_fraction}")
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be a positive integer or None; got {limit}")
    if format not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}; got {format!r}")
    pairs: Iterable[PreferencePair] = _load_source(source, format, progress or logger.info)
    if split != "all":
        want_eval = split == "eval"
        pairs = (pair for pair in pairs if is_eval_pair(pair, eval_fraction) == want_eval)
    if is_shipped(source):
        pairs = _dedupe_ids(list(pairs))
        if limit is not None:
            order = list(range(len(pairs)))
            random.Random(seed).shuffle(order)
            pairs = [pairs[i] for i in order[:limit]]
    elif limit is not None:
        pairs = _dedupe_ids(_smallest_keys(pairs, limit, seed))
    else:
        pairs = _dedupe_ids(list(pairs))
    if not pairs:
        raise DataError(f"preference data '{source}' has no usable pairs in split '{split}'")
    return pairs


def _smallest_keys(pairs: Iterable[PreferencePair], limit: int, seed: int) -> list[PreferencePair]:
    """The ``limit`` pairs with the smallest sha1(seed, id), in key order, holding at most ``limit`` in memory."""
    heap: list[tuple[int, int, PreferencePair]] = []  # (-key, -position, pair): a max-heap on key
    for position, pair in enumerate(pairs):
        key = int.from_bytes(hashlib.sha1(f"{seed}\x00{pair.id}".encode()).digest()[:8], "big")
        item = (-key, -position, pair)
        if len(heap) < limit:
            heapq.heappush(heap, item)
        elif item > heap[0]:
            heapq.heapreplace(heap, item)
    return [pair for _, _, pair in sorted(heap, key=lambda item: (-item[0], -item[1]))]


# ---------------------------------------------------------------------------------------------------- sources
def _load_source(source: str, format: str, progress: Callable[[str], None]) -> Iterator[PreferencePair]:
    if source == "hh":
        return (pair for name in HH_FILES for pair in _load_shipped(name))
    if source in HH_FILES:
        return iter(_load_shipped(source))
    path = Path(os.path.expanduser(source))
    if path.is_dir():
        return _rows_to_pairs(_read_saved(path), f"folder '{path}'", path.name, format, progress)
    if _builder(path) is not None or path.exists():
        if not path.is_file():
            raise DataError(f"preference data file '{source}' does not exist")
        readable = _builder(path) == "json" and path.suffix not in (".bz2", ".xz", ".zst")  # plain text or gzip
        diagnose = (lambda: _diagnose_json(path, _stem(path), format)) if readable else None
        return _rows_to_pairs(
            _read_file(path, _stem(path), format), f"file '{path}'", _stem(path), format, progress, diagnose
        )
    name = source.split(":")[0]
    return _rows_to_pairs(_read_hub(source), f"'{source}'", name.replace("/", "-"), format, progress)


@functools.lru_cache(maxsize=len(HH_FILES))
def _load_shipped(name: str) -> tuple[PreferencePair, ...]:
    """The shipped files are read once per process (pairs are immutable); always the HH convention."""
    path = HH_FILES[name]
    return tuple(_rows_to_pairs(_read_file(path, name, "hh"), f"file '{path}'", name, "hh", lambda message: None))


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".gz", ".bz2", ".xz", ".zst", *FILE_BUILDERS):
        name = name.removesuffix(suffix)
    return name


def _builder(path: Path) -> str | None:
    """The ``datasets`` packaged builder of a file name (compressed files by their inner suffix)."""
    suffixes = path.suffixes[-2:] if path.suffix in (".gz", ".bz2", ".xz", ".zst") else path.suffixes[-1:]
    return FILE_BUILDERS.get(suffixes[0]) if suffixes else None


def _read_file(path: Path, prefix: str, format: str) -> Iterator[Any]:
    """Rows of a local file, streamed by ``datasets`` (nothing is cached or read whole)."""
    import datasets

    builder = _builder(path)
    if builder is None:
        raise DataError(
            f"preference data file '{path}': unknown file type (expected {', '.join(FILE_BUILDERS)}, or .gz)"
        )
    if path.stat().st_size == 0:
        return  # an empty file has no rows (datasets cannot infer a schema from it)
    try:
        try:
            options = {"chunksize": JSON_CHUNK_BYTES} if builder == "json" else {}
            stream = datasets.load_dataset(builder, data_files=str(path), split="train", streaming=True, **options)
        except Exception as exc:  # the builder inspects the file first (schema, parquet footer)
            raise _ReadError() from exc
        yield from _guarded(iter(stream))
    except _ReadError as exc:
        cause = exc.__cause__
        readable = builder == "json" and path.suffix not in (".bz2", ".xz", ".zst")  # plain text or gzip
        if readable and _diagnose_json(path, prefix, format) == 0:  # raises naming a bad line or row
            return  # only blank lines: no rows
        raise DataError(f"preference data file '{path}' cannot be read as {builder}: {_one_line(cause)}") from cause


def _read_saved(path: Path) -> Iterator[Any]:
    """Rows of a ``save_to_disk`` folder (memory-mapped; a DatasetDict gives its only or its ``train`` split)."""
    import datasets

    try:
        dataset = datasets.load_from_disk(str(path))
    except Exception as exc:  # FileNotFoundError for a folder that is not a saved dataset, and arrow errors
        raise DataError(f"preference data folder '{path}' is not a datasets save_to_disk folder: {_one_line(exc)}") from exc
    if isinstance(dataset, datasets.DatasetDict):
        names = list(dataset)
        if len(names) != 1 and "train" not in names:
            raise DataError(f"preference data folder '{path}' holds splits {names}; expected one split or 'train'")
        dataset = dataset[names[0] if len(names) == 1 else "train"]
    yield from dataset


def _read_hub(source: str) -> Iterator[Any]:
    import datasets

    parts = source.split(":")
    if len(parts) > 3:
        raise DataError(f"preference data '{source}': expected name, name:split or name:config:split")
    name, config, hub_split = parts[0], (parts[1] if len(parts) == 3 else None), (parts[-1] if len(parts) > 1 else "")
    try:
        stream = datasets.load_dataset(name, config, split=hub_split or "train", streaming=True)
        yield from _guarded(iter(stream))
    except (_ReadError, Exception) as exc:  # datasets raises many types (ConnectionError, DatasetNotFoundError)
        if isinstance(exc, DataError):
            raise
        cause = exc.__cause__ if isinstance(exc, _ReadError) else exc
        raise DataError(
            f"preference data '{source}' is not a shipped set (hh, hh-helpful, hh-harmless), not a local file or "
            f"folder, and could not be loaded with datasets.load_dataset: {_one_line(cause)}"
        ) from cause


class _ReadError(Exception):
    """An error of the reader itself (not of the row handling), raised from its cause."""


def _guarded(rows: Iterator[Any]) -> Iterator[Any]:
    while True:
        try:
            row = next(rows)
        except StopIteration:
            return
        except Exception as exc:
            raise _ReadError() from exc
        yield row


def _diagnose_json(path: Path, prefix: str, format: str) -> int | None:
    """After ``datasets`` failed on a JSON(L) file (e.g. a field whose type changes between rows): find the first
    line that is not JSON, or the first row that is not a usable pair, and raise naming it. Returns the number of
    rows when all are usable (None for a JSON array)."""
    import gzip

    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as handle:
            first = handle.read(1)
            while first.isspace():
                first = handle.read(1)
            if first == "[":
                return None  # a JSON array: datasets' own message is the best we have
            handle.seek(0)
            index = -1
            for line_number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                index += 1
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DataError(f"preference data file '{path}', line {line_number}: not valid JSON ({exc})") from None
                if not isinstance(row, dict):
                    raise DataError(
                        f"preference data file '{path}', line {line_number}: expected a JSON object, got "
                        f"{type(row).__name__}"
                    )
                _row_to_pair(row, f"preference data file '{path}', row {index}", index, prefix, format)
            return index + 1  # the number of rows, all usable
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"preference data file '{path}' cannot be read: {_one_line(exc)}") from exc


def _one_line(exc: BaseException | None) -> str:
    text = str(exc) if exc is not None else ""
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__


# ------------------------------------------------------------------------------------------------------ rows
def _rows_to_pairs(
    rows: Iterable[Any], origin: str, prefix: str, format: str, progress: Callable[[str], None],
    diagnose: Callable[[], None] | None = None,
) -> Iterator[PreferencePair]:
    """Pairs of ``rows``; ``diagnose`` (JSON files) re-reads the raw lines to name the right row when a row is
    bad, since ``datasets`` may have cast a column whose type changes between rows (e.g. to numbers)."""
    started = last = time.monotonic()
    index = -1
    for index, row in enumerate(rows):
        try:
            pair = _row_to_pair(row, f"preference data {origin}, row {index}", index, prefix, format)
        except DataError:
            if diagnose is not None:
                diagnose()
            raise
        if pair is not None:
            yield pair
        now = time.monotonic()
        if now - last >= PROGRESS_SECONDS:
            last = now
            progress(f"[data] {origin}: {index + 1} rows read ({(index + 1) / (now - started):.0f} rows/s)")
    elapsed = time.monotonic() - started
    if elapsed >= PROGRESS_SECONDS:
        progress(f"[data] {origin}: {index + 1} rows read in {elapsed:.0f} s ({(index + 1) / elapsed:.0f} rows/s)")


def _row_to_pair(row: Any, where: str, index: int, prefix: str, format: str) -> PreferencePair | None:
    if not isinstance(row, dict):
        raise DataError(f"{where}: expected an object with chosen/rejected fields, got {type(row).__name__}")
    present = {key: value for key, value in row.items() if value is not None}  # arrow fills absent columns with None
    for key in ("chosen", "rejected"):
        if key not in present:
            raise DataError(
                f"{where}: missing field '{key}' (expected text or a list of {{role, content}} messages; "
                f"fields present: {sorted(present)})"
            )
    pair_id = str(present["id"]) if "id" in present else f"{prefix}-{index:04d}"
    conversational = format == "conversational" or (
        format == "auto" and any(isinstance(present.get(key), list) for key in ("prompt", "chosen", "rejected"))
    )
    if conversational:
        return _conversational_pair(present, where, pair_id, prefix)
    for key in ("prompt", "chosen", "rejected"):
        if key in present and not isinstance(present[key], str):
            raise DataError(f"{where}: field '{key}': expected text, got {_describe(present[key])}")
    chosen, rejected = present["chosen"], present["rejected"]
    if "prompt" in present and format in ("auto", "standard"):
        prompt, separator = present["prompt"], ""
    elif format == "hh" or (format == "auto" and _looks_hh(chosen, rejected)):
        try:
            prompt, chosen, rejected = parse_hh_transcript(chosen, rejected)
        except ValueError as exc:
            raise DataError(f"{where}: fields 'chosen'/'rejected': expected HH transcripts; {exc}") from exc
        separator = HH_SEPARATOR
    elif format == "standard":
        raise DataError(f"{where}: missing field 'prompt' (format 'standard' expects prompt/chosen/rejected text)")
    else:
        from trl.data_utils import extract_prompt

        extracted = extract_prompt({"chosen": chosen, "rejected": rejected})
        prompt, chosen, rejected, separator = extracted["prompt"], extracted["chosen"], extracted["rejected"], ""
        if not prompt.strip():
            raise DataError(
                f"{where}: fields 'chosen'/'rejected' (implicit prompt): expected the same prompt text followed by "
                f"two different responses, got texts that differ from their first character"
            )
    if not chosen.strip() or not rejected.strip() or chosen.strip() == rejected.strip():
        return None  # degenerate pair: no preference to learn
    return PreferencePair(id=pair_id, prompt=prompt, chosen=chosen, rejected=rejected, source=prefix,
                          separator=separator)


def _looks_hh(chosen: str, rejected: str) -> bool:
    return chosen.lstrip().startswith("Human:") and ASSISTANT_MARK in os.path.commonprefix([chosen, rejected])


def _conversational_pair(row: dict, where: str, pair_id: str, prefix: str) -> PreferencePair | None:
    from trl.data_utils import maybe_extract_prompt

    for key in ("prompt", "chosen", "rejected"):
        if key in row and not (key == "prompt" and isinstance(row[key], str)):
            _check_messages(row[key], f"{where}: field '{key}'")
    example = {key: row[key] for key in ("prompt", "chosen", "rejected") if key in row}
    extracted = maybe_extract_prompt(example)
    prompt, chosen, rejected = extracted["prompt"], extracted["chosen"], extracted["rejected"]
    if not prompt:
        raise DataError(
            f"{where}: fields 'chosen'/'rejected' (implicit prompt): expected conversations that share their first "
            f"message(s), got conversations that differ from message 0"
        )
    if prompt[-1]["role"] not in ("user", "tool", "assistant"):
        raise DataError(
            f"{where}: field 'prompt': expected the last prompt message from 'user', 'tool' or 'assistant', "
            f"got role '{prompt[-1]['role']}'"
        )
    for key, messages in (("chosen", chosen), ("rejected", rejected)):
        if not messages:
            raise DataError(f"{where}: field '{key}': expected at least one response message after the prompt, got none")
    if chosen == rejected or not any(m["content"].strip() for m in chosen) or not any(m["content"].strip() for m in rejected):
        return None  # degenerate pair: no preference to learn
    freeze = lambda messages: tuple(dict(m) for m in messages)  # noqa: E731
    return PreferencePair(
        id=pair_id, prompt=_plain(prompt), chosen=_plain(chosen, roles=False), rejected=_plain(rejected, roles=False),
        source=prefix,
        separator="", messages=(freeze(prompt), freeze(chosen), freeze(rejected)),
    )


def _check_messages(value: Any, where: str) -> None:
    if not isinstance(value, list) or not value:
        raise DataError(f"{where}: expected a non-empty list of {{role, content}} messages, got {_describe(value)}")
    for number, message in enumerate(value):
        if not isinstance(message, dict):
            raise DataError(f"{where}, message {number}: expected a {{role, content}} object, got {_describe(message)}")
        for key in ("role", "content"):
            if not isinstance(message.get(key), str):
                raise DataError(
                    f"{where}, message {number}: expected text '{key}', got {_describe(message.get(key))} "
                    f"(keys present: {sorted(message)})"
                )


def _plain(messages: list[dict], roles: bool = True) -> str:
    """Messages as plain text for reports and the text hash: ``"User: …\\n\\nAssistant: …"``; a reply that is one
    assistant message without ``roles`` is its content alone."""
    if not roles and len(messages) == 1 and messages[0]["role"] == "assistant":
        return messages[0]["content"]
    return "\n\n".join(f"{m['role'].capitalize()}: {m['content']}" for m in messages)


def _describe(value: Any) -> str:
    if value is None:
        return "nothing"
    text = repr(value)
    return f"{type(value).__name__} {text[:40] + '…' if len(text) > 40 else text}"


def _dedupe_ids(pairs: list[PreferencePair]) -> list[PreferencePair]:
    seen: set[str] = set()
    for pair in pairs:
        if pair.id in seen:
            raise DataError(f"preference data has the id '{pair.id}' twice; ids must be unique")
        seen.add(pair.id)
    return pairs
