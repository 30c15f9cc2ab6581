"""Scale-out on torch.distributed (gloo on CPU, nccl on GPU): which shards a rank builds, barriers, failure sync.

Under ``torchrun`` (``WORLD_SIZE`` > 1 in the environment) the process group is initialised on first use.
Rank r builds the store shards r, r + W, r + 2W, ... of the global shard grid, so the stores, and the scores
computed from them, are the same whatever the number of processes. Rank 0 scores after a barrier.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist

from trustattr.errors import TrustAttrError

__all__ = ["Topology", "current_topology", "rank_shards"]


class PeerFailedError(TrustAttrError):
    """Another rank stopped with an error; this rank stops too."""


@dataclass(frozen=True)
class Topology:
    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def all_ok(self, ok: bool) -> bool:
        """True when every rank reports ``ok`` (a collective: every rank must call it)."""
        if not self.distributed:
            return ok
        flag = torch.tensor([1 if ok else 0], dtype=torch.int64)
        dist.all_reduce(flag, op=dist.ReduceOp.MIN)
        return bool(flag.item())

    def check_peers(self, ok: bool = True) -> None:
        """Raise on every rank if any rank failed (call after each phase; a failing rank calls it with False)."""
        if not self.all_ok(ok) and ok:
            raise PeerFailedError("another process of this distributed run failed; see its error")

    @contextlib.contextmanager
    def synchronized(self) -> Iterator[None]:
        """A phase every rank enters: it ends with a barrier, and an error on one rank stops all of them."""
        try:
            yield
        except BaseException:
            with contextlib.suppress(Exception):
                self.check_peers(False)
            raise
        self.check_peers(True)


def current_topology() -> Topology:
    """This process's rank and world size; initialises the default process group under torchrun."""
    if dist.is_available() and dist.is_initialized():
        return Topology(dist.get_rank(), dist.get_world_size())
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and dist.is_available():
        dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
        return Topology(dist.get_rank(), dist.get_world_size())
    return Topology()


def rank_shards(num_shards: int, topology: Topology) -> list[int]:
    """The shards this rank builds: rank, rank + world, ..."""
    return list(range(topology.rank, num_shards, topology.world_size))
