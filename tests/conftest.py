"""Shared fixtures: seeded inputs, thread-count control."""

from __future__ import annotations

import contextlib

import pytest
import torch


@pytest.fixture
def gen() -> torch.Generator:
    """A CPU generator seeded per test, so inputs never depend on test order."""
    return torch.Generator().manual_seed(1234)


@contextlib.contextmanager
def num_threads(n: int):
    """Run a block with ``n`` intra-op threads (the kernels use torch's thread count)."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture
def threads():
    return num_threads
