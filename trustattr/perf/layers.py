"""Speed and memory of the gradient sketches of one linear layer against the torch formulations
peers use, in the same process (``trustattr bench kernels``, benchmarks/bench_layers.py).

* ``project_factored`` (LoGra/Kronecker sketch) vs the torch chain of LoGra/LogIX/bergson:
  ``a @ R_in``, ``g @ R_out`` (R_in, R_out materialized beforehand, as those libraries keep them)
  and an einsum over tokens.
* ``project_outer`` (dense JL of vec(G_n)) vs materialize-then-project: ``torch.bmm`` forms
  G [N, d_out, d_in], then ``trustattr.project`` (the fastest projector available here; a
  materialized R for ``torch.mm`` would take d_out*d_in*k*4 bytes, 2 GiB at the target shape).

Each row reports both times (median of interleaved runs), the ratio baseline / fused, the fused
GFLOP/s and its share of the measured fp32 torch.mm peak, and the peak extra memory of each
(fresh process; outputs included), for project_outer also as a share of one materialized G batch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from trustattr import ops
from trustattr.perf.measure import peak_extra_memory, peak_mib, time_interleaved
from trustattr.perf.timing import collect, gemm_peak_gflops, machine_info

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16, "float64": torch.float64}


@dataclass
class LayersBenchArguments:
    """Shapes to measure. Defaults are issue 5's target shapes."""

    factored: list[int] = field(default_factory=lambda: [16, 512, 768, 768, 64, 64],
                                metadata={"help": "project_factored shape: N, T, d_in, d_out, k_in, k_out"})
    outer: list[int] = field(default_factory=lambda: [16, 256, 512, 512, 2048],
                             metadata={"help": "project_outer shape: N, T, d_in, d_out, k"})
    dtype: str = field(default="float32", metadata={"help": "dtype of a and g"})
    reps: int = field(default=5, metadata={"help": "interleaved timed runs of each method"})
    memory: bool = field(default=True, metadata={"help": "measure peak extra memory (fresh processes)"})
    gemm_sizes: list[int] = field(default_factory=lambda: [1024, 2048, 3072],
                                  metadata={"help": "square torch.mm sizes whose best rate is the GEMM peak"})

    def __post_init__(self) -> None:
        if not self.gemm_sizes or min(self.gemm_sizes) < 1:
            raise ValueError(f"LayersBenchArguments.gemm_sizes must be positive integers, got {self.gemm_sizes}")
        for name, length in (("factored", 6), ("outer", 5)):
            values = getattr(self, name)
            if len(values) != length or min(values) < 1:
                raise ValueError(f"LayersBenchArguments.{name} must be {length} positive integers, got {values}")
        if self.dtype not in DTYPES:
            raise ValueError(f"LayersBenchArguments.dtype must be one of {sorted(DTYPES)}, got '{self.dtype}'")
        if self.reps < 1:
            raise ValueError(f"LayersBenchArguments.reps must be >= 1, got {self.reps}")


def _inputs_code(n: int, t: int, d_in: int, d_out: int, dtype: str) -> str:
    return (f"gen = torch.Generator().manual_seed(0)\n"
            f"a = torch.randn({n}, {t}, {d_in}, generator=gen).to(torch.{dtype})\n"
            f"g = torch.randn({n}, {t}, {d_out}, generator=gen).to(torch.{dtype})\n")


def _memory(setup: str, calls: dict[str, str], warmup: str) -> dict[str, int]:
    """Peak extra bytes of each call, each in its own fresh process."""
    head = "from trustattr import ops\n" + setup
    return {name: peak_extra_memory(head, call, warmup)["extra_peak_bytes"] for name, call in calls.items()}


def _row(kind: str, shape: dict[str, int], timings, flops: float, peak: float) -> dict[str, object]:
    fused, base = timings["fused"].median, timings["baseline"].median
    return {"op": kind, **shape, "fused_seconds": fused, "baseline_seconds": base,
            "fused_best_seconds": timings["fused"].low, "baseline_best_seconds": timings["baseline"].low,
            "ratio": base / fused, "gflops": flops / fused / 1e9, "pct_gemm_peak": 100 * flops / fused / 1e9 / peak}


def bench_factored(args: LayersBenchArguments, peak: float, log: Callable[[str], None]) -> dict[str, object]:
    n, t, d_in, d_out, k_in, k_out = args.factored
    dtype = DTYPES[args.dtype]
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(n, t, d_in, generator=gen).to(dtype)
    g = torch.randn(n, t, d_out, generator=gen).to(dtype)
    mm_dtype = torch.float64 if dtype == torch.float64 else dtype
    r_in = ops.random_matrix(d_in, k_in, ops.derive_seed(0, 0)).to(mm_dtype)
    r_out = ops.random_matrix(d_out, k_out, ops.derive_seed(0, 1)).to(mm_dtype)

    def chain() -> torch.Tensor:  # what LoGra-style code runs: two GEMMs, then a token reduction
        return torch.einsum("nto,nti->noi", g @ r_out, a @ r_in).reshape(n, k_out * k_in)

    fused_out, chain_out = ops.project_factored(a, g, k_in, k_out, 0), chain().float()
    err = ((fused_out.double() - chain_out.double()).norm() / chain_out.double().norm()).item()
    timings = time_interleaved({"baseline": chain, "fused": lambda: ops.project_factored(a, g, k_in, k_out, 0)},
                               reps=args.reps)
    flops = 2.0 * n * t * (d_in * k_in + d_out * k_out) + 2.0 * n * t * k_out * k_in
    row = _row("project_factored", {"N": n, "T": t, "d_in": d_in, "d_out": d_out, "k_in": k_in, "k_out": k_out},
               timings, flops, peak)
    row["rel_diff_vs_baseline"] = err
    del a, g
    collect()
    if args.memory:
        setup = _inputs_code(n, t, d_in, d_out, args.dtype) + (
            f"r_in = ops.random_matrix({d_in}, {k_in}, ops.derive_seed(0, 0)).to(a.dtype)\n"
            f"r_out = ops.random_matrix({d_out}, {k_out}, ops.derive_seed(0, 1)).to(a.dtype)\n")
        mem = _memory(setup, {
            "fused": f"ops.project_factored(a, g, {k_in}, {k_out}, 0)",
            "baseline": f"torch.einsum('nto,nti->noi', g @ r_out, a @ r_in).reshape({n}, -1)",
        }, warmup=f"ops.project_factored(a[:1, :4], g[:1, :4], {k_in}, {k_out}, 0); (a[:1] @ r_in)")
        row.update({f"{name}_extra_peak_bytes": value for name, value in mem.items()})
    log(format_row(row))
    return row


def bench_outer(args: LayersBenchArguments, peak: float, log: Callable[[str], None]) -> dict[str, object]:
    n, t, d_in, d_out, k = args.outer
    dtype = DTYPES[args.dtype]
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(n, t, d_in, generator=gen).to(dtype)
    g = torch.randn(n, t, d_out, generator=gen).to(dtype)

    def materialize() -> torch.Tensor:  # G [N, d_out, d_in] in full, then the projection
        return ops.project(torch.bmm(g.transpose(1, 2), a).flatten(1), k, 0)

    fused_out, base_out = ops.project_outer(a, g, k, 0), materialize()
    err = ((fused_out.double() - base_out.double()).norm() / base_out.double().norm()).item()
    timings = time_interleaved({"baseline": materialize, "fused": lambda: ops.project_outer(a, g, k, 0)},
                               reps=args.reps)
    flops = 2.0 * n * t * d_out * d_in + 2.0 * n * d_out * d_in * k
    row = _row("project_outer", {"N": n, "T": t, "d_in": d_in, "d_out": d_out, "k": k}, timings, flops, peak)
    row["rel_diff_vs_baseline"] = err
    row["g_batch_bytes"] = n * d_out * d_in * torch.empty(0, dtype=torch.float32).element_size()
    del a, g
    collect()
    if args.memory:
        mem = _memory(_inputs_code(n, t, d_in, d_out, args.dtype), {
            "fused": f"ops.project_outer(a, g, {k}, 0)",
            "baseline": f"ops.project(torch.bmm(g.transpose(1, 2), a).flatten(1), {k}, 0)",
        }, warmup=f"ops.project_outer(a[:1, :4], g[:1, :4], {k}, 0); ops.project(a[:1, 0], {k}, 0)")
        row.update({f"{name}_extra_peak_bytes": value for name, value in mem.items()})
        row["fused_pct_of_g_batch"] = 100 * row["fused_extra_peak_bytes"] / row["g_batch_bytes"]
    log(format_row(row))
    return row


def run(args: LayersBenchArguments, log: Callable[[str], None] = print) -> dict[str, object]:
    """Both benchmarks; returns {"machine", "peaks", "rows": [project_factored row, project_outer row]}."""
    log("measuring this machine's fp32 torch.mm peak...")
    peaks = {"gemm_float32_gflops": gemm_peak_gflops(torch.float32, tuple(args.gemm_sizes))}
    rows = [bench_factored(args, peaks["gemm_float32_gflops"], log),
            bench_outer(args, peaks["gemm_float32_gflops"], log)]
    return {"machine": machine_info(), "dtype": args.dtype, "peaks": peaks, "rows": rows}


def format_row(row: dict[str, object]) -> str:
    text = (f"{row['op']:>16}  fused {1e3 * row['fused_seconds']:8.2f} ms  baseline {1e3 * row['baseline_seconds']:8.2f} ms"
            f"  x{row['ratio']:.2f}  {row['gflops']:6.1f} GFLOP/s ({row['pct_gemm_peak']:.0f}% of torch.mm peak)")
    if "fused_extra_peak_bytes" in row:
        fused, baseline = peak_mib(row, 2)
        text += f"  peak extra MiB fused {fused} / baseline {baseline}"
    if "fused_pct_of_g_batch" in row:
        text += f" ({row['fused_pct_of_g_batch']:.1f}% of one G batch)"
    return text


def markdown(result: dict[str, object]) -> str:
    """Markdown table of ``run``'s result, for benchmarks/RESULTS.md."""
    lines = [
        f"dtype {result['dtype']}; fp32 torch.mm peak measured in the same run: "
        f"{result['peaks']['gemm_float32_gflops']:.0f} GFLOP/s. Times: median of interleaved runs.",
        "",
        "| op | shape | fused ms | baseline ms | speed-up | fused GFLOP/s (% of torch.mm peak) "
        "| peak extra MiB fused / baseline | fused peak / one G batch |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        if r["op"] == "project_factored":
            shape = f"N={r['N']} T={r['T']} d_in={r['d_in']} d_out={r['d_out']} k_in={r['k_in']} k_out={r['k_out']}"
            baseline = "a@R_in, g@R_out, einsum"
        else:
            shape = f"N={r['N']} T={r['T']} d_in={r['d_in']} d_out={r['d_out']} k={r['k']}"
            baseline = "bmm (G) + project"
        share = f"{r['fused_pct_of_g_batch']:.1f}%" if "fused_pct_of_g_batch" in r else "n/a"
        lines.append(f"| {r['op']} (vs {baseline}) | {shape} | {1e3 * r['fused_seconds']:.2f} | "
                     f"{1e3 * r['baseline_seconds']:.2f} | {r['ratio']:.2f}x | {r['gflops']:.0f} ({r['pct_gemm_peak']:.0f}%) | "
                     f"{' / '.join(peak_mib(r, 2))} | {share} |")
    return "\n".join(lines)
