"""FeatureStore: round trip, argument mismatch errors, atomic shards, resume after an interruption."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.attribution import oracles
from trustattr.attribution.attributor import Attributor
from trustattr.attribution.losses import make_loss
from trustattr.attribution.modules import select_modules
from trustattr.attribution.projector import Projector
from trustattr.attribution.store import FeatureStore, diff_arguments
from trustattr.errors import ArgumentsMismatchError
from trustattr.models import load_tokenizer, tiny_model

ARGS = {"model": "abc", "projection": {"k": 4, "seed": 0}, "loss": {"loss": "sft"}}


def test_round_trip_is_memory_mapped(tmp_path):
    store = FeatureStore(tmp_path / "s", ARGS, num_rows=5, dim=3, shard_size=2)
    assert store.num_shards == 3 and store.missing() == [0, 1, 2]
    data = np.arange(15, dtype=np.float32).reshape(5, 3)
    for shard in range(3):
        rows = store.shard_rows(shard)
        store.write_shard(shard, data[rows.start : rows.stop])
    assert store.complete()
    assert isinstance(store.read_shard(0), np.memmap)
    np.testing.assert_array_equal(FeatureStore(tmp_path / "s", ARGS, 5, 3, 2).read_all(), data)
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == [
        "shard-00000.npy", "shard-00001.npy", "shard-00002.npy", "store.json"]  # no temporaries left


def test_mismatched_arguments_name_the_differing_keys(tmp_path):
    FeatureStore(tmp_path / "s", ARGS, 5, 3, 2)
    other = {**ARGS, "projection": {"k": 8, "seed": 0}}
    with pytest.raises(ArgumentsMismatchError, match=r"differing: arguments\.projection\.k\)"):
        FeatureStore(tmp_path / "s", other, 5, 3, 2)
    with pytest.raises(ArgumentsMismatchError, match=r"num_rows"):
        FeatureStore(tmp_path / "s", ARGS, 6, 3, 2)
    assert diff_arguments({"a": {"b": 1}, "c": 2}, {"a": {"b": 1}, "d": 2}) == ["c", "d"]


def test_wrong_shard_shape_is_rejected(tmp_path):
    store = FeatureStore(tmp_path / "s", ARGS, 5, 3, 2)
    with pytest.raises(ValueError, match=r"shape \(2, 3\)"):
        store.write_shard(0, np.zeros((3, 3), dtype=np.float32))
    assert store.missing() == [0, 1, 2]


class _Interrupt(Exception):
    pass


def test_interrupted_fill_resumes_from_last_complete_shard(tmp_path):
    tokenizer, model = load_tokenizer("tiny"), tiny_model(seed=2).to(torch.float64)
    model.set_attn_implementation("sdpa")  # float64 end to end: batching changes nothing beyond round-off
    modules = select_modules(model, last_k_blocks=1)
    attributor = Attributor(model, tokenizer, make_loss("sft", max_length=40, max_prompt_length=20), modules,
                            Projector(modules, "factored", 4, 0), batch_size=2)
    pairs = oracles.PAIRS[:7]
    store = FeatureStore(tmp_path / "s", ARGS, len(pairs), attributor.projector.dim, shard_size=3)
    done = []

    def interrupt_in_second_shard(n):
        done.append(n)
        if sum(done) > 4:  # shard 0 (3 pairs) is written, shard 1 is half done
            raise _Interrupt

    with pytest.raises(_Interrupt):
        attributor.fill_store(store, pairs, progress=interrupt_in_second_shard)
    assert store.missing() == [1, 2]
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == ["shard-00000.npy", "store.json"]
    first = store.read_shard(0).copy()
    assert attributor.fill_store(store, pairs) == [1, 2]  # only the missing shards are computed
    np.testing.assert_array_equal(store.read_shard(0), first)
    full = attributor.features(pairs).numpy().astype(np.float32)  # the store keeps float32
    np.testing.assert_allclose(store.read_all(), full, rtol=1e-6, atol=1e-7 * np.abs(full).max())
    assert torch.from_numpy(store.read_all()).abs().max() > 0
