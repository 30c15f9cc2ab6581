"""Speed of ``project`` against the baselines a user would otherwise run, in the same process.

For each (N, D, k, dtype, kind) it reports the time, gradient elements/s (N*D/t), GFLOP/s for dense
kinds (2*N*D*k/t) and their share of this machine's measured GEMM peak, GB/s read for ``sjlt``
and its share of the measured read bandwidth, and the ratio to:
  * ``torch.mm`` with the matrix already materialized (what a user could not afford at scale;
    skipped when the D x k matrix would exceed ``max_matrix_gib``),
  * TRAK's ``BasicProjector`` and dattri's CPU ``BasicProjector`` when ``traker`` / ``dattri`` are
    installed (``pip install --no-deps traker==0.3.2 dattri==0.3.0``).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from trustattr import ops
from trustattr.perf.timing import collect, gemm_peak_gflops, read_bandwidth_gbs, timeit

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16, "float64": torch.float64}


@dataclass
class ProjectionBenchArguments:
    """The grid to measure. Defaults are the kernel issue's target shapes."""

    rows: list[int] = field(default_factory=lambda: [1, 8, 64], metadata={"help": "batch sizes N"})
    features: list[int] = field(default_factory=lambda: [1 << 20], metadata={"help": "input dims D"})
    dims: list[int] = field(default_factory=lambda: [2048], metadata={"help": "sketch dims k"})
    dtypes: list[str] = field(default_factory=lambda: ["float32"], metadata={"help": "input dtypes"})
    kinds: list[str] = field(default_factory=lambda: ["rademacher", "sjlt"], metadata={"help": "sketch kinds"})
    peers: bool = field(default=True, metadata={"help": "time TRAK/dattri projectors when installed"})
    max_matrix_gib: float = field(default=9.0, metadata={"help": "largest materialized matrix for the torch.mm baseline"})
    reps: int = field(default=3, metadata={"help": "timed repetitions per measurement (median reported)"})

    def __post_init__(self) -> None:
        for name in ("rows", "features", "dims"):
            values = getattr(self, name)
            if not values or min(values) < 1:
                raise ValueError(f"ProjectionBenchArguments.{name} must be non-empty positive integers, got {values}")
        unknown = [d for d in self.dtypes if d not in DTYPES]
        if unknown:
            raise ValueError(f"ProjectionBenchArguments.dtypes must be among {sorted(DTYPES)}, got {unknown}")
        bad = [k for k in self.kinds if k not in ("rademacher", "gaussian", "sjlt")]
        if bad:
            raise ValueError(f"ProjectionBenchArguments.kinds must be rademacher/gaussian/sjlt, got {bad}")
        if self.reps < 1:
            raise ValueError(f"ProjectionBenchArguments.reps must be >= 1, got {self.reps}")


def _peer_projectors(D: int, k: int, kind: str) -> dict[str, Callable[[torch.Tensor], torch.Tensor]]:
    """TRAK's and dattri's CPU projectors for the same (D, k, kind), if installed."""
    if kind not in ("rademacher", "gaussian"):
        return {}
    peers: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {}
    if importlib.util.find_spec("trak") is not None:
        from trak.projectors import BasicProjector, ProjectionType

        kind_enum = ProjectionType.rademacher if kind == "rademacher" else ProjectionType.normal
        trak = BasicProjector(grad_dim=D, proj_dim=k, seed=0, proj_type=kind_enum, device="cpu", dtype=torch.float32)
        peers["trak"] = lambda x: trak.project(x.float(), model_id=0)
    if importlib.util.find_spec("dattri") is not None:
        from dattri.func.projection import BasicProjector as DattriProjector

        dattri = DattriProjector(
            feature_dim=D, proj_dim=k, seed=0, proj_type="rademacher" if kind == "rademacher" else "normal", device="cpu"
        )
        peers["dattri"] = lambda x: dattri.project(x.float(), ensemble_id=0)
    return peers


def _mm_baseline(x: torch.Tensor, D: int, k: int, max_gib: float) -> float | None:
    """Seconds of x @ R with R [D, k] already in memory (values do not affect GEMM speed)."""
    if D * k * x.element_size() > max_gib * (1 << 30):
        return None
    R = torch.ones(D, k, dtype=x.dtype if x.dtype != torch.float16 else torch.float32)
    xm = x.to(R.dtype)
    seconds = timeit(lambda: xm @ R, warmup=1, reps=3).median
    del R, xm
    collect()
    return seconds


def run(args: ProjectionBenchArguments, log: Callable[[str], None] = print) -> dict[str, object]:
    """Measure the grid; returns {"peaks": {...}, "rows": [dict per measurement]}."""
    log("measuring this machine's peaks (fp32/bf16 GEMM, read bandwidth)...")
    peaks = {
        "gemm_float32_gflops": gemm_peak_gflops(torch.float32),
        "gemm_bfloat16_gflops": gemm_peak_gflops(torch.bfloat16),
        "read_gbs": read_bandwidth_gbs(),
    }
    rows: list[dict[str, object]] = []
    gen = torch.Generator().manual_seed(0)
    for D in args.features:
        for k in args.dims:
            for kind in args.kinds:
                peers = _peer_projectors(D, k, kind) if args.peers else {}
                for dtype_name in args.dtypes:
                    dtype = DTYPES[dtype_name]
                    for N in args.rows:
                        x = torch.randn(N, D, generator=gen).to(dtype)
                        t = timeit(lambda: ops.project(x, k, 0, kind), warmup=1, reps=args.reps).median
                        row: dict[str, object] = {
                            "kind": kind, "dtype": dtype_name, "N": N, "D": D, "k": k,
                            "seconds": t, "elements_per_s": N * D / t,
                        }
                        if kind == "sjlt":
                            row["gbs"] = N * D * x.element_size() / t / 1e9
                            row["pct_read_bw"] = 100 * row["gbs"] / peaks["read_gbs"]
                        else:
                            row["gflops"] = 2 * N * D * k / t / 1e9
                            peak = peaks["gemm_bfloat16_gflops" if dtype == torch.bfloat16 else "gemm_float32_gflops"]
                            row["pct_gemm_peak"] = 100 * row["gflops"] / peak
                        mm = _mm_baseline(x, D, k, args.max_matrix_gib)
                        if mm is not None:
                            row["mm_seconds"] = mm
                            row["speedup_vs_mm"] = mm / t
                            if kind != "sjlt":
                                row["ratio_gflops_vs_mm"] = mm / t
                        for name, peer in peers.items():
                            pt = timeit(lambda: peer(x), warmup=0, reps=1).median
                            row[f"{name}_seconds"] = pt
                            row[f"speedup_vs_{name}"] = pt / t
                        rows.append(row)
                        log(format_row(row))
                        del x
                        collect()
    return {"peaks": peaks, "rows": rows}


def format_row(row: dict[str, object]) -> str:
    parts = [f"{row['kind']:>10} {row['dtype']:>8} N={row['N']:<4} D={row['D']:<8} k={row['k']:<5}",
             f"{1e3 * row['seconds']:9.2f} ms", f"{row['elements_per_s'] / 1e9:6.2f} Gelem/s"]
    if "gflops" in row:
        parts.append(f"{row['gflops']:7.1f} GFLOP/s ({row['pct_gemm_peak']:.0f}% of torch.mm peak)")
    if "gbs" in row:
        parts.append(f"{row['gbs']:6.1f} GB/s ({row['pct_read_bw']:.0f}% of read bw)")
    for key in ("speedup_vs_mm", "speedup_vs_trak", "speedup_vs_dattri"):
        if key in row:
            parts.append(f"{key.removeprefix('speedup_vs_')} x{row[key]:.2f}")
    return "  ".join(parts)


def markdown(result: dict[str, object]) -> str:
    """A Markdown table of ``run``'s result, for benchmarks/RESULTS.md."""
    peaks = result["peaks"]
    lines = [
        f"Peaks measured in the same run (best torch.mm; our kernel can exceed it): fp32 GEMM {peaks['gemm_float32_gflops']:.0f} GFLOP/s, "
        f"bf16 GEMM {peaks['gemm_bfloat16_gflops']:.0f} GFLOP/s, read {peaks['read_gbs']:.1f} GB/s.",
        "",
        "| kind | dtype | N | D | k | ms | GFLOP/s (% of torch.mm peak) or GB/s (% of read bw) | vs torch.mm (R materialized) | vs TRAK BasicProjector | vs dattri BasicProjector |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        rate = (f"{r['gflops']:.0f} ({r['pct_gemm_peak']:.0f}%)" if "gflops" in r
                else f"{r['gbs']:.1f} GB/s ({r['pct_read_bw']:.0f}%)")
        cells = [f"{r[key]:.2f}x" if key in r else "n/a"
                 for key in ("speedup_vs_mm", "speedup_vs_trak", "speedup_vs_dattri")]
        lines.append(f"| {r['kind']} | {r['dtype']} | {r['N']} | {r['D']} | {r['k']} | {1e3 * r['seconds']:.1f} | {rate} | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines)
