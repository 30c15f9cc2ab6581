"""torch.distributed scale-out: 2 CPU processes (gloo) build the stores and score exactly like 1 process."""

from __future__ import annotations

import os
import socket

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from tests.conftest import num_threads
from trustattr.attribution.arguments import ScoreArguments
from trustattr.attribution.pipeline import score

WORLD = 2


def _arguments(out) -> ScoreArguments:
    return ScoreArguments.from_preset("tiny", limit=8, shard_size=2, batch_size=2, test_limit=2,
                                      benchmarks="ethics,privacy", out=str(out))


def _worker(rank: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        result = score(_arguments(out), progress=False, log=lambda message: None)
        assert (result is not None) == (rank == 0)
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_gloo_processes_equal_one_process(tmp_path):
    mp.spawn(_worker, args=(_free_port(), str(tmp_path / "two")), nprocs=WORLD, join=True)
    with num_threads(1):
        single = score(_arguments(tmp_path / "one"), progress=False, log=lambda message: None)
    two = np.load(tmp_path / "two" / "scores.npz")
    assert list(two["pair_ids"]) == single.pair_ids
    np.testing.assert_array_equal(two["raw"], single.raw)  # same shard grid, same batches: bit-identical
    assert np.abs(single.raw).max() > 0
    shards = sorted(p.name for p in (tmp_path / "two" / "work" / "features" / "final" / "train").glob("shard-*"))
    assert shards == [f"shard-{i:05d}.npy" for i in range(4)]  # rank 0 wrote 0 and 2, rank 1 wrote 1 and 3


def test_rank_shards_partition_the_grid():
    from trustattr.attribution.distributed import Topology, rank_shards

    parts = [rank_shards(7, Topology(rank, 3)) for rank in range(3)]
    assert parts == [[0, 3, 6], [1, 4], [2, 5]]
