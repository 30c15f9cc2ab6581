"""Helpers shared by the op tests: relative error, the bad-input check run on an op and its
oracle, and a fresh Python process (for environment variables read at import)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import torch

from trustattr import ops, reference


def rel_err(out: torch.Tensor, ref: torch.Tensor) -> float:
    """||out - ref|| / ||ref|| in float64 on the CPU."""
    out, ref = out.double().cpu(), ref.double().cpu()
    return ((out - ref).norm() / ref.norm().clamp_min(1e-300)).item()


def assert_op_and_oracle_refuse(op: str, args: tuple, error: type[Exception], message: str) -> None:
    """The compiled op ``trustattr.ops.<op>`` and its oracle ``trustattr.reference.<op>`` both raise
    ``error`` with a message matching ``message`` for ``args``."""
    for fn in (getattr(ops, op), getattr(reference, op)):
        with pytest.raises(error, match=message):
            fn(*args)


def run_python(code: str, timeout: float = 300, **env: str) -> subprocess.CompletedProcess:
    """Runs ``code`` (dedented) in a fresh interpreter with ``env`` added to the environment."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True, text=True, timeout=timeout, env={**os.environ, **env},
    )
