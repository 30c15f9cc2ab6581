"""Timing, machine peaks and peak-memory helpers shared by every speed benchmark."""

from __future__ import annotations

import datetime
import gc
import os
import platform
import resource
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Timing:
    """Median and spread of repeated runs, in seconds."""

    median: float
    low: float
    high: float
    runs: int


def timeit(fn: Callable[[], object], warmup: int = 1, reps: int = 5, min_time: float = 0.0) -> Timing:
    """Run ``fn`` ``warmup`` times, then at least ``reps`` times (and ``min_time`` seconds)."""
    for _ in range(warmup):
        fn()
    samples: list[float] = []
    start = time.perf_counter()
    while len(samples) < reps or time.perf_counter() - start < min_time:
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return Timing(statistics.median(samples), min(samples), max(samples), len(samples))


def gemm_peak_gflops(dtype: torch.dtype = torch.float32, sizes: tuple[int, ...] = (1024, 2048, 3072)) -> float:
    """This machine's measured dense GEMM rate: the best torch.mm over square sizes, in GFLOP/s."""
    best = 0.0
    for size in sizes:
        a = torch.randn(size, size, dtype=dtype)
        b = torch.randn(size, size, dtype=dtype)
        t = timeit(lambda: a @ b, warmup=1, reps=3)
        best = max(best, 2 * size**3 / t.median / 1e9)
    return best


def read_bandwidth_gbs(gib: float = 1.0) -> float:
    """This machine's measured memory read bandwidth (torch.sum over ``gib`` GiB), in GB/s."""
    x = torch.ones(int(gib * (1 << 30)) // 4)
    t = timeit(lambda: x.sum(), warmup=1, reps=5)
    return x.numel() * 4 / t.median / 1e9


def peak_rss_bytes() -> int:
    """Peak resident set size of this process so far."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def current_rss_bytes() -> int:
    """Current resident set size of this process (Linux /proc), or the peak elsewhere."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return peak_rss_bytes()


def collect() -> None:
    """Free what the previous measurement left behind."""
    gc.collect()


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def machine_info() -> dict[str, object]:
    """What produced the numbers: CPU, threads, torch, device, date, commit."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info: dict[str, object] = {
        "cpu": cpu,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "date": datetime.date.today().isoformat(),
        "commit": git_commit(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info
