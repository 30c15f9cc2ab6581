"""Shared by the issue-5 benchmarks: interleaved timing, and one call's peak extra memory (``peak_mib``
formats it for their tables).

``time_interleaved`` alternates the compared functions run by run, so a burst of load from other
processes on a shared machine hits all of them alike (the ratio stays fair).

``peak_extra_memory`` measures in a fresh Python process, which keeps allocator caches of earlier
calls out of the number. The process runs ``setup`` (inputs), then ``warmup`` (e.g. the call on
tiny inputs so the thread pool exists, or a pass that maps a file's pages), resets the kernel's
peak-RSS counter (``/proc/self/clear_refs``), runs ``call`` once, and reports from
``/proc/self/status``:

* ``extra_peak_bytes``: VmHWM after the call minus VmRSS before it (outputs included);
* ``rss_file_before`` / ``rss_file_after``: pages of memory-mapped files (the page cache) mapped
  into the process, and ``rss_anon_before`` / ``rss_anon_after`` (heap, tensors).

When the file is mapped entirely before the call (``warmup`` reads it), file pages cannot grow
during the call, so ``extra_peak_bytes`` is exactly the anonymous memory above the page cache.

Linux refreshes VmHWM when memory is unmapped, not when glibc returns a thread arena's pages with
madvise, so the process runs with a fixed ``MALLOC_MMAP_THRESHOLD_`` of 64 KiB: every larger buffer
is its own mapping, whose release updates the peak. The kernel batches RSS counting per thread
(up to 64 pages), so a number is accurate to about 256 KiB per thread.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable

from trustattr.perf.timing import Timing


def time_interleaved(fns: dict[str, Callable[[], object]], reps: int = 5, warmup: int = 1) -> dict[str, Timing]:
    """Seconds per call of every function, timed in turns: f1, f2, ..., f1, f2, ..."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(reps):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            samples[name].append(time.perf_counter() - t0)
    return {name: Timing(statistics.median(s), min(s), max(s), len(s)) for name, s in samples.items()}

_SCRIPT = """
import gc, json, torch
def status():
    keys = ("VmHWM", "VmRSS", "RssAnon", "RssFile")
    with open("/proc/self/status") as f:
        return {{l.split(":")[0]: int(l.split()[1]) * 1024 for l in f if l.startswith(keys)}}
{setup}
{warmup}
gc.collect()
before = status()
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")
result = {call}
after = status()
print("PEAK-JSON" + json.dumps({{"before": before, "after": after}}))
"""


def peak_extra_memory(setup: str, call: str, warmup: str = "", timeout: float = 600) -> dict[str, int]:
    """Measure one call's peak extra RSS in a fresh process (Linux); see the module docstring."""
    script = _SCRIPT.format(setup=textwrap.dedent(setup), warmup=textwrap.dedent(warmup), call=call)
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=timeout, env=env)
    lines = [line for line in run.stdout.splitlines() if line.startswith("PEAK-JSON")]
    if run.returncode != 0 or not lines:
        raise RuntimeError(f"peak-memory subprocess failed (exit {run.returncode}): {run.stderr[-2000:]}")
    data = json.loads(lines[-1].removeprefix("PEAK-JSON"))
    before, after = data["before"], data["after"]
    return {
        "extra_peak_bytes": after["VmHWM"] - before["VmRSS"],
        "rss_before": before["VmRSS"],
        "rss_anon_before": before["RssAnon"],
        "rss_anon_after": after["RssAnon"],
        "rss_file_before": before["RssFile"],
        "rss_file_after": after["RssFile"],
    }


def peak_mib(row: dict, digits: int) -> tuple[str, str]:
    """The fused and baseline peak extra memory of a result row, in MiB with ``digits`` decimals
    ("n/a" where the row has no measurement)."""

    def mib(value: object) -> str:
        return f"{value / 2**20:.{digits}f}" if isinstance(value, (int, float)) else "n/a"

    return mib(row.get("fused_extra_peak_bytes")), mib(row.get("baseline_extra_peak_bytes"))
