"""Speed and memory of the scoring kernels against the torch formulations peers use, in the same
process (``trustattr bench kernels``, benchmarks/bench_scoring.py).

* ``topk_score`` on train features in a memory-mapped float32 file (N=10^6, k=1024 by default: a
  4 GB file, written once under the temp directory and deleted afterwards) vs ``torch.mm`` over
  the same mapped tensor + ``torch.topk`` (which materializes the N x M score matrix). Reported: GB/s
  read from the (page-cached) file and its share of this machine's read bandwidth measured in the
  same run, and the peak memory above the page cache: a fresh process maps the whole file first
  (so file pages cannot grow during the call) and then records VmHWM - VmRSS around one call.
* ``score`` (in memory) vs ``train @ query.T``, and ``datainf_scores`` (default damping, 8 blocks)
  vs the same formula in torch ops (three passes, float32).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from trustattr import ops
from trustattr.perf.measure import peak_extra_memory, peak_mib, time_interleaved
from trustattr.perf.timing import collect, machine_info, read_bandwidth_gbs


@dataclass
class ScoringBenchArguments:
    """Shapes to measure. Defaults are issue 5's target shapes."""

    rows: int = field(default=1_000_000, metadata={"help": "train rows N in the memory-mapped file"})
    k: int = field(default=1024, metadata={"help": "feature dimension k"})
    queries: int = field(default=8, metadata={"help": "query rows M"})
    topk: int = field(default=100, metadata={"help": "kept rows per query"})
    score_rows: int = field(default=200_000, metadata={"help": "train rows of the in-memory score/datainf runs"})
    reps: int = field(default=3, metadata={"help": "interleaved timed runs of each method"})
    memory: bool = field(default=True, metadata={"help": "measure peak memory above the page cache (fresh process)"})
    directory: str = field(default="", metadata={"help": "where to write the temporary file (default: temp dir)"})
    bandwidth_gib: float = field(default=1.0, metadata={"help": "GiB summed to measure the read bandwidth"})

    def __post_init__(self) -> None:
        if self.bandwidth_gib <= 0:
            raise ValueError(f"ScoringBenchArguments.bandwidth_gib must be > 0, got {self.bandwidth_gib}")
        for name in ("rows", "k", "queries", "topk", "score_rows", "reps"):
            if getattr(self, name) < 1:
                raise ValueError(f"ScoringBenchArguments.{name} must be >= 1, got {getattr(self, name)}")
        if self.topk > self.rows:
            raise ValueError(f"ScoringBenchArguments.topk must be <= rows ({self.rows}), got {self.topk}")


def _available_bytes() -> int:
    try:
        with open("/proc/meminfo") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemAvailable"))
    except (OSError, StopIteration):
        return 0


def write_features(path: Path, rows: int, k: int, seed: int = 0, chunk: int = 65536) -> None:
    """Random float32 features [rows, k] into a raw file (numpy memmap layout), with a progress bar."""
    mapped = np.memmap(path, dtype=np.float32, mode="w+", shape=(rows, k))
    gen = torch.Generator().manual_seed(seed)
    with tqdm(total=rows * k * 4, unit="B", unit_scale=True, desc="writing features") as bar:
        for start in range(0, rows, chunk):
            stop = min(rows, start + chunk)
            mapped[start:stop] = torch.randn(stop - start, k, generator=gen).numpy()
            bar.update((stop - start) * k * 4)
    mapped.flush()
    del mapped


def _open(path: Path, rows: int, k: int) -> torch.Tensor:
    return torch.from_numpy(np.memmap(path, dtype=np.float32, mode="r+", shape=(rows, k)))


def bench_topk(args: ScoringBenchArguments, read_gbs: float, path: Path, log: Callable[[str], None]) -> dict:
    train = _open(path, args.rows, args.k)
    query = torch.randn(args.queries, args.k, generator=torch.Generator().manual_seed(1))
    train.sum()  # page cache warm and every page mapped: both methods start alike

    def baseline() -> tuple[torch.Tensor, torch.Tensor]:  # the N x M matrix, then torch.topk
        values, indices = torch.topk(train @ query.T, args.topk, dim=0)
        return values.T, indices.T

    fused_values, fused_indices = ops.topk_score(train, query, args.topk)
    base_values, _ = baseline()
    agree = torch.allclose(fused_values, base_values, rtol=1e-4, atol=1e-3)
    timings = time_interleaved({"baseline": baseline, "fused": lambda: ops.topk_score(train, query, args.topk)},
                               reps=args.reps)
    file_bytes = args.rows * args.k * 4
    fused = timings["fused"].median
    row = {"op": "topk_score", "N": args.rows, "k": args.k, "M": args.queries, "topk": args.topk,
           "file_bytes": file_bytes, "fused_seconds": fused, "baseline_seconds": timings["baseline"].median,
           "ratio": timings["baseline"].median / fused, "gbs": file_bytes / fused / 1e9,
           "pct_read_bw": 100 * file_bytes / fused / 1e9 / read_gbs, "values_match_baseline": agree}
    del train
    collect()
    if args.memory:
        setup = (f"import numpy as np\nfrom trustattr import ops\n"
                 f"train = torch.from_numpy(np.memmap({str(path)!r}, dtype=np.float32, mode='r+', "
                 f"shape=({args.rows}, {args.k})))\nquery = torch.randn({args.queries}, {args.k})\n")
        warmup = "train.sum(); ops.topk_score(train[:1000], query, 10)"
        for name, call in (("fused", f"ops.topk_score(train, query, {args.topk})"),
                           ("baseline", f"torch.topk(train @ query.T, {args.topk}, dim=0)")):
            mem = peak_extra_memory(setup, call, warmup)
            row[f"{name}_extra_peak_bytes"] = mem["extra_peak_bytes"]
            row["page_cache_mapped_bytes"] = mem["rss_file_before"]
    log(format_row(row))
    return row


def _datainf_torch(train: torch.Tensor, query: torch.Tensor, bounds: list[int]) -> torch.Tensor:
    """DataInf (default damping) as a torch user writes it: norms and dots, then h, then scores."""
    n, out = train.shape[0], torch.zeros(train.shape[0])
    for lo, hi in zip(bounds, bounds[1:]):
        g, v = train[:, lo:hi], query[lo:hi]
        sq = g.square().sum(1)
        lam = 0.1 * sq.mean() / (hi - lo)
        coef = (g @ v) / (lam + sq)
        out -= g @ ((n * v - coef @ g) / (n * lam))
    return out


def bench_in_memory(args: ScoringBenchArguments, read_gbs: float, log: Callable[[str], None]) -> list[dict]:
    gen = torch.Generator().manual_seed(2)
    train = torch.randn(args.score_rows, args.k, generator=gen)
    query = torch.randn(args.queries, args.k, generator=gen)
    bounds = [args.k * i // 8 for i in range(9)]
    rows = []
    cases = {
        "score": (lambda: train @ query.T, lambda: ops.score(train, query)),
        "datainf_scores": (lambda: _datainf_torch(train, query[0], bounds),
                           lambda: ops.datainf_scores(train, query[0], None, bounds)),
    }
    for name, (baseline, fused) in cases.items():
        timings = time_interleaved({"baseline": baseline, "fused": fused}, reps=args.reps)
        passes = 3 if name == "datainf_scores" else 1
        seconds = timings["fused"].median
        gbs = passes * train.numel() * 4 / seconds / 1e9
        row = {"op": name, "N": args.score_rows, "k": args.k, "M": args.queries if name == "score" else 1,
               "fused_seconds": seconds, "baseline_seconds": timings["baseline"].median,
               "ratio": timings["baseline"].median / seconds, "gbs": gbs, "pct_read_bw": 100 * gbs / read_gbs,
               "passes": passes}
        rows.append(row)
        log(format_row(row))
    return rows


def run(args: ScoringBenchArguments, log: Callable[[str], None] = print) -> dict[str, object]:
    """All scoring benchmarks; returns {"machine", "peaks", "rows": [topk row (or a skip note), score, datainf]}."""
    log("measuring this machine's read bandwidth...")
    peaks = {"read_gbs": read_bandwidth_gbs(args.bandwidth_gib)}
    rows: list[dict] = []
    need = args.rows * args.k * 4
    if _available_bytes() < need + (2 << 30):
        rows.append({"op": "topk_score", "skipped": f"needs {need / 2**30:.1f} GiB of page cache + 2 GiB free, "
                                                    f"{_available_bytes() / 2**30:.1f} GiB available"})
        log(rows[-1]["skipped"])
    else:
        directory = args.directory or tempfile.gettempdir()
        fd, name = tempfile.mkstemp(prefix="trustattr_topk_", suffix=".f32", dir=directory)
        os.close(fd)
        try:
            write_features(Path(name), args.rows, args.k)
            rows.append(bench_topk(args, peaks["read_gbs"], Path(name), log))
        finally:
            os.remove(name)
    rows += bench_in_memory(args, peaks["read_gbs"], log)
    return {"machine": machine_info(), "peaks": peaks, "rows": rows}


def format_row(row: dict) -> str:
    if "skipped" in row:
        return f"{row['op']}: skipped ({row['skipped']})"
    text = (f"{row['op']:>15} N={row['N']} k={row['k']} M={row['M']}  fused {1e3 * row['fused_seconds']:8.1f} ms"
            f"  baseline {1e3 * row['baseline_seconds']:8.1f} ms  x{row['ratio']:.2f}  {row['gbs']:5.1f} GB/s"
            f" ({row['pct_read_bw']:.0f}% of read bw)")
    if "fused_extra_peak_bytes" in row:
        fused, baseline = peak_mib(row, 1)
        text += f"  peak MiB above page cache: fused {fused} / baseline {baseline}"
    return text


def markdown(result: dict[str, object]) -> str:
    """Markdown table of ``run``'s result, for benchmarks/RESULTS.md."""
    lines = [
        f"Read bandwidth measured in the same run (torch.sum over 1 GiB in memory): "
        f"{result['peaks']['read_gbs']:.1f} GB/s. Times: median of interleaved runs.",
        "",
        "| op | shape | fused ms | baseline | baseline ms | speed-up | GB/s read (% of read bw) "
        "| peak MiB above page cache, fused / baseline |",
        "|---|---|---|---|---|---|---|---|",
    ]
    baselines = {"topk_score": "torch.mm + torch.topk", "score": "train @ query.T",
                 "datainf_scores": "torch ops (3 passes)"}
    for r in result["rows"]:
        if "skipped" in r:
            lines.append(f"| {r['op']} | skipped: {r['skipped']} | | | | | | |")
            continue
        shape = f"N={r['N']} k={r['k']} M={r['M']}" + (f" topk={r['topk']} (memory-mapped file)" if "topk" in r else "")
        memory = " / ".join(peak_mib(r, 1)) if "fused_extra_peak_bytes" in r else "n/a"
        lines.append(f"| {r['op']} | {shape} | {1e3 * r['fused_seconds']:.1f} | {baselines[r['op']]} | "
                     f"{1e3 * r['baseline_seconds']:.1f} | {r['ratio']:.2f}x | {r['gbs']:.1f} ({r['pct_read_bw']:.0f}%) | {memory} |")
    return "\n".join(lines)
