"""Shared fixtures of the trust-benchmark tests: one CPU thread (the machine is shared: oversubscribed OpenMP
threads make tiny models 100x slower), the tiny model, and one small evaluation reused by many tests."""

from __future__ import annotations

import pytest
import torch

from trustattr.models import load_model


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny():
    model, tokenizer = load_model("tiny", seed=0)
    return model, tokenizer


@pytest.fixture(scope="session")
def tiny_eval(tiny, tmp_path_factory):
    """All five benchmarks on the tiny model, limit 2, batch 4: (out_dir, returned metrics, log lines)."""
    from trustattr.trust import evaluate

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    out_dir = tmp_path_factory.mktemp("tiny_eval")
    lines: list[str] = []
    try:
        metrics = evaluate(*tiny, out_dir=out_dir, limit=2, batch_size=4, progress=False, log=lines.append)
    finally:
        torch.set_num_threads(before)
    return out_dir, metrics, lines
