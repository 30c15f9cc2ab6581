"""Every CPU kernel family against its torch formulation, once per instruction-set variant
(``trustattr bench kernels --isa avx512,avx2,baseline``, benchmarks/bench_isa.py; issue 17).

Each variant runs in its own Python process with the environment that selects it on both sides:

* trustattr: ``TRUSTATTR_CPU_ISA`` (avx2 / baseline force the narrower kernels; unset = the widest
  this CPU runs);
* torch: ``ATEN_CPU_CAPABILITY`` (ATen's own vectorized kernels: topk, sums, elementwise) and
  ``MKL_ENABLE_INSTRUCTIONS`` (the BLAS behind ``torch.mm``/``bmm`` in the x86 wheels, which are
  built with MKL), plus ``DNNL_MAX_CPU_ISA`` for oneDNN (not on the fp32 matmul path, set for
  completeness). This torch build honours the first two: ``torch.backends.cpu.get_cpu_capability()``
  follows ``ATEN_CPU_CAPABILITY``, and a 1024^3 ``torch.mm`` slows from ~67 (AVX-512) to ~38 (AVX2)
  and ~13-15 GFLOP/s (SSE4_2) with ``MKL_ENABLE_INSTRUCTIONS`` (single thread, Xeon, 2026-12-05).
  MKL has no SSE2-only mode: the baseline variant (SSE2 on x86-64) is compared with MKL at SSE4_2.

Inside a process every comparison is interleaved run by run (``time_interleaved``), so load from
other processes hits both sides alike. ``clock="cpu"`` times process CPU time (``time.process_time``)
instead of wall time: on a shared VM whose vCPUs are often descheduled (steal time) that is the
steadier measure, and with ``threads=1`` it is exactly the work of the one thread that runs both
sides. Every row records the CPU model, the variant that actually ran (``extension_info()``) and
torch's capability, so a result can never be attributed to the wrong ISA.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch

ISAS = ("avx512", "avx2", "baseline")

# The environment of each variant, for trustattr and for torch's kernels (see the module docstring).
ISA_ENV: dict[str, dict[str, str]] = {
    "avx512": {"ATEN_CPU_CAPABILITY": "avx512", "MKL_ENABLE_INSTRUCTIONS": "AVX512", "DNNL_MAX_CPU_ISA": "AVX512_CORE"},
    "avx2": {"TRUSTATTR_CPU_ISA": "avx2", "ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2",
             "DNNL_MAX_CPU_ISA": "AVX2"},
    "baseline": {"TRUSTATTR_CPU_ISA": "baseline", "ATEN_CPU_CAPABILITY": "default", "MKL_ENABLE_INSTRUCTIONS": "SSE4_2",
                 "DNNL_MAX_CPU_ISA": "SSE41"},
}
_CLEARED = ("TRUSTATTR_CPU_ISA", "ATEN_CPU_CAPABILITY", "MKL_ENABLE_INSTRUCTIONS", "DNNL_MAX_CPU_ISA")


@dataclass
class IsaBenchArguments:
    """The ISA matrix to measure. Defaults are issue 17's shapes."""

    isas: list[str] = field(default_factory=lambda: list(ISAS), metadata={"help": "variants: avx512, avx2, baseline"})
    project: list[str] = field(default_factory=lambda: ["8x16384x512", "16x16384x512", "64x16384x512",
                                                        "16x65536x1024", "64x65536x2048"],
                               metadata={"help": "dense project shapes NxDxk (rademacher, fp32)"})
    project_t: list[str] = field(default_factory=lambda: ["16x65536x1024"], metadata={"help": "project_t shapes NxDxk"})
    sjlt: list[str] = field(default_factory=lambda: ["64x262144x2048"], metadata={"help": "sjlt shapes NxDxk"})
    factored: list[int] = field(default_factory=lambda: [16, 256, 768, 768, 64, 64],
                                metadata={"help": "project_factored shape: N, T, d_in, d_out, k_in, k_out"})
    outer: list[int] = field(default_factory=lambda: [8, 128, 256, 256, 1024],
                             metadata={"help": "project_outer shape: N, T, d_in, d_out, k"})
    score: list[int] = field(default_factory=lambda: [20000, 1024, 8], metadata={"help": "score shape: N, k, M"})
    topk: list[int] = field(default_factory=lambda: [100000, 1024, 8, 100],
                            metadata={"help": "topk_score shape (in memory): N, k, M, topk"})
    datainf: list[int] = field(default_factory=lambda: [100000, 1024, 8],
                               metadata={"help": "datainf_scores shape: N, k, blocks"})
    threads: int = field(default=1, metadata={"help": "threads of both sides (0: torch's default)"})
    clock: str = field(default="cpu", metadata={"help": "cpu (process CPU time) or wall"})
    reps: int = field(default=7, metadata={"help": "interleaved timed runs of each side (median reported)"})
    ops: list[str] = field(default_factory=lambda: ["project", "project_t", "sjlt", "project_factored", "project_outer",
                                                    "score", "topk_score", "datainf_scores"],
                           metadata={"help": "op families to run"})

    def __post_init__(self) -> None:
        bad = [i for i in self.isas if i not in ISAS]
        if bad or not self.isas:
            raise ValueError(f"IsaBenchArguments.isas must be among {list(ISAS)}, got {self.isas}")
        if self.clock not in ("cpu", "wall"):
            raise ValueError(f"IsaBenchArguments.clock must be cpu or wall, got '{self.clock}'")
        if self.reps < 1 or self.threads < 0:
            raise ValueError(f"IsaBenchArguments: reps must be >= 1 and threads >= 0, got {self.reps}, {self.threads}")
        for name in ("project", "project_t", "sjlt"):
            for shape in getattr(self, name):
                parts = shape.split("x")
                if len(parts) != 3 or not all(p.isdigit() and int(p) > 0 for p in parts):
                    raise ValueError(f"IsaBenchArguments.{name}: shapes are NxDxk, got '{shape}'")
        for name, length in (("factored", 6), ("outer", 5), ("score", 3), ("topk", 4), ("datainf", 3)):
            values = getattr(self, name)
            if len(values) != length or min(values) < 1:
                raise ValueError(f"IsaBenchArguments.{name} must be {length} positive integers, got {values}")

    @classmethod
    def quick(cls, **overrides: object) -> IsaBenchArguments:
        """Small shapes: seconds per variant (a smoke run, not the issue's targets)."""
        small = dict(project=["8x16384x512", "64x16384x512"], project_t=["16x16384x512"], sjlt=["16x65536x1024"],
                     factored=[4, 128, 256, 256, 32, 32], outer=[4, 64, 128, 128, 512], score=[5000, 512, 8],
                     topk=[20000, 256, 8, 10], datainf=[20000, 256, 4], reps=3)
        return cls(**{**small, **overrides})


def cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def runnable(isa: str, flags: set[str] | None = None) -> str | None:
    """None when this CPU can run the variant, else why not."""
    import platform

    flags = cpu_flags() if flags is None else flags
    if isa == "baseline":
        return None
    if platform.machine() not in ("x86_64", "AMD64"):
        return f"{isa} is an x86-64 variant; this machine is {platform.machine()}"
    need = {"avx512": ("avx512f", "avx512bw", "avx512dq", "avx512vl", "fma", "bmi2"), "avx2": ("avx2", "fma", "bmi2")}[isa]
    missing = [f for f in need if f not in flags]
    return f"this CPU lacks {', '.join(missing)}" if missing else None


# ------------------------------------------------------------------ one process, one variant


def _timer(clock: str):
    import time

    return time.process_time if clock == "cpu" else time.perf_counter


def _interleaved(fns: dict[str, Callable[[], object]], reps: int, clock: str) -> dict[str, list[float]]:
    now = _timer(clock)
    for fn in fns.values():
        fn()
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(reps):
        for name, fn in fns.items():
            t0 = now()
            fn()
            samples[name].append(now() - t0)
    return samples


def _shape3(text: str) -> tuple[int, int, int]:
    n, d, k = (int(v) for v in text.split("x"))
    return n, d, k


def _median(values: list[float]) -> float:
    import statistics

    return statistics.median(values)


def measure_variant(args: IsaBenchArguments, log: Callable[[str], None] = print) -> dict[str, object]:
    """Every op of ``args.ops`` in this process (its variant is whatever the environment selects)."""
    from trustattr import ops
    from trustattr.perf.scoring import _datainf_torch
    from trustattr.perf.timing import collect, machine_info

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    info = ops.extension_info()
    context = {"cpu_isa": info["cpu_isa"], "torch_capability": torch.backends.cpu.get_cpu_capability(),
               "mkl_enable_instructions": os.environ.get("MKL_ENABLE_INSTRUCTIONS", ""),
               "threads": torch.get_num_threads(), "clock": args.clock}
    machine = machine_info()
    rows: list[dict[str, object]] = []
    gen = torch.Generator().manual_seed(0)

    def add(op: str, shape: str, fused: Callable[[], object], baseline: Callable[[], object], baseline_name: str,
            flops: float | None = None) -> None:
        s = _interleaved({"fused": fused, "baseline": baseline}, args.reps, args.clock)
        f, b = _median(s["fused"]), _median(s["baseline"])
        row: dict[str, object] = {"op": op, "shape": shape, "baseline": baseline_name, "fused_seconds": f,
                                  "baseline_seconds": b, "fused_best_seconds": min(s["fused"]),
                                  "baseline_best_seconds": min(s["baseline"]), "ratio": b / f,
                                  "cpu": machine["cpu"], **context}
        if flops is not None:
            row["fused_gflops"], row["baseline_gflops"] = flops / f / 1e9, flops / b / 1e9
        rows.append(row)
        log(f"[{context['cpu_isa']}/torch {context['torch_capability']}] {op:>16} {shape:<26} fused "
            f"{1e3 * f:9.2f} ms  {baseline_name} {1e3 * b:9.2f} ms  x{b / f:.2f}"
            + (f"  ({row['fused_gflops']:.1f} vs {row['baseline_gflops']:.1f} GFLOP/s)" if flops else ""))
        collect()

    if "project" in args.ops:
        for text in args.project:
            n, d, k = _shape3(text)
            x = torch.randn(n, d, generator=gen)
            r = torch.ones(d, k)  # values do not change GEMM speed
            add("project", f"N={n} D={d} k={k}", lambda: ops.project(x, k, 0, "rademacher"), lambda: x @ r,
                "x @ R (R materialized)", 2.0 * n * d * k)
            del x, r
    if "project_t" in args.ops:
        for text in args.project_t:
            n, d, k = _shape3(text)
            y = torch.randn(n, k, generator=gen)
            rt = torch.ones(k, d)
            add("project_t", f"N={n} D={d} k={k}", lambda: ops.project_t(y, d, 0, "rademacher"), lambda: y @ rt,
                "y @ R^T (materialized)", 2.0 * n * d * k)
            del y, rt
    if "sjlt" in args.ops:
        for text in args.sjlt:
            n, d, k = _shape3(text)
            x = torch.randn(n, d, generator=gen)
            bucket = torch.randint(0, k, (d,), generator=gen)
            sign = torch.randint(0, 2, (d,), generator=gen).float() * 2 - 1

            def scatter() -> torch.Tensor:  # the same sparse product in torch: one scatter-add per row
                return torch.zeros(n, k).index_add_(1, bucket, x * sign)

            add("sjlt", f"N={n} D={d} k={k}", lambda: ops.project(x, k, 0, "sjlt"), scatter,
                "index_add_ (hits precomputed)")
            del x
    if "project_factored" in args.ops:
        n, t, d_in, d_out, k_in, k_out = args.factored
        a, g = torch.randn(n, t, d_in, generator=gen), torch.randn(n, t, d_out, generator=gen)
        r_in = ops.random_matrix(d_in, k_in, ops.derive_seed(0, 0))
        r_out = ops.random_matrix(d_out, k_out, ops.derive_seed(0, 1))

        def chain() -> torch.Tensor:
            return torch.einsum("nto,nti->noi", g @ r_out, a @ r_in).reshape(n, k_out * k_in)

        flops = 2.0 * n * t * (d_in * k_in + d_out * k_out) + 2.0 * n * t * k_out * k_in
        add("project_factored", f"N={n} T={t} d={d_in}x{d_out} k={k_in}x{k_out}",
            lambda: ops.project_factored(a, g, k_in, k_out, 0), chain, "a@R_in, g@R_out, einsum", flops)
        del a, g
    if "project_outer" in args.ops:
        n, t, d_in, d_out, k = args.outer
        a, g = torch.randn(n, t, d_in, generator=gen), torch.randn(n, t, d_out, generator=gen)
        flops = 2.0 * n * t * d_out * d_in + 2.0 * n * d_out * d_in * k
        add("project_outer", f"N={n} T={t} d={d_in}x{d_out} k={k}", lambda: ops.project_outer(a, g, k, 0),
            lambda: ops.project(torch.bmm(g.transpose(1, 2), a).flatten(1), k, 0), "bmm (G) + project", flops)
        del a, g
    if "score" in args.ops:
        n, k, m = args.score
        train, query = torch.randn(n, k, generator=gen), torch.randn(m, k, generator=gen)
        add("score", f"N={n} k={k} M={m}", lambda: ops.score(train, query), lambda: train @ query.T,
            "train @ query.T", 2.0 * n * k * m)
        del train
    if "topk_score" in args.ops:
        n, k, m, topk = args.topk
        train, query = torch.randn(n, k, generator=gen), torch.randn(m, k, generator=gen)
        add("topk_score", f"N={n} k={k} M={m} topk={topk}", lambda: ops.topk_score(train, query, topk),
            lambda: torch.topk(train @ query.T, topk, dim=0), "mm + torch.topk", 2.0 * n * k * m)
        del train
    if "datainf_scores" in args.ops:
        n, k, blocks = args.datainf
        train, query = torch.randn(n, k, generator=gen), torch.randn(k, generator=gen)
        bounds = [k * i // blocks for i in range(blocks + 1)]
        add("datainf_scores", f"N={n} k={k} blocks={blocks}", lambda: ops.datainf_scores(train, query, None, bounds),
            lambda: _datainf_torch(train, query, bounds), "torch ops (3 passes)")
        del train
    return {"machine": machine, **context, "rows": rows}


# ------------------------------------------------------------------ one process per variant

_MARK = "ISA-RESULT-JSON "


def run(args: IsaBenchArguments, log: Callable[[str], None] = print) -> dict[str, object]:
    """One subprocess per variant of ``args.isas``; returns {"machine", "arguments", "variants": {isa: result}}."""
    from trustattr.perf.timing import machine_info

    variants: dict[str, object] = {}
    for isa in args.isas:
        why = runnable(isa)
        if why is not None:
            variants[isa] = {"skipped": why}
            log(f"[{isa}] skipped: {why}")
            continue
        env = {k: v for k, v in os.environ.items() if k not in _CLEARED}
        env.update(ISA_ENV[isa])
        child = json.dumps({**asdict(args), "isas": [isa]})
        proc = subprocess.Popen([sys.executable, "-m", "trustattr.perf.isa", child], env=env, stdout=subprocess.PIPE,
                                text=True)
        result = None
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith(_MARK):
                result = json.loads(line[len(_MARK):])
            else:
                log(line.rstrip("\n"))
        if proc.wait() != 0 or result is None:
            raise RuntimeError(f"the {isa} benchmark process failed (exit {proc.returncode})")
        if result["cpu_isa"] != isa:  # e.g. the extension fell back: never report it under the wrong name
            result = {"skipped": f"asked for {isa}, the extension ran {result['cpu_isa']}", "ran": result}
        variants[isa] = result
    return {"machine": machine_info(), "arguments": asdict(args), "variants": variants}


def markdown(result: dict[str, object]) -> str:
    """One row per (op, shape), one ratio column per variant (torch formulation time / trustattr time)."""
    variants: dict[str, dict] = result["variants"]  # type: ignore[assignment]
    isas = list(variants)
    args = result["arguments"]
    lines = [f"CPU: {result['machine']['cpu']}; threads {args['threads'] or 'torch default'}; "
             f"clock: {args['clock']} (median of {args['reps']} interleaved runs). Cells: torch time / trustattr "
             f"time (> 1: trustattr faster), with trustattr's ms.", "",
             "| op | shape | torch formulation | " + " | ".join(isas) + " |",
             "|---|---|---|" + "---|" * len(isas)]
    header = []
    for isa in isas:
        v = variants[isa]
        header.append(f"{isa}: skipped ({v['skipped']})" if "skipped" in v
                      else f"{isa}: trustattr {v['cpu_isa']}, torch {v['torch_capability']}, MKL "
                           f"{v['mkl_enable_instructions'] or 'default'}")
    keys: list[tuple[str, str, str]] = []
    cells: dict[tuple[str, str, str], dict[str, str]] = {}
    for isa in isas:
        for r in variants[isa].get("rows", []):
            key = (r["op"], r["shape"], r["baseline"])
            if key not in cells:
                keys.append(key)
                cells[key] = {}
            cells[key][isa] = f"{r['ratio']:.2f}× ({1e3 * r['fused_seconds']:.1f} ms)"
    for key in keys:
        lines.append(f"| `{key[0]}` | {key[1]} | {key[2]} | " + " | ".join(cells[key].get(i, "n/a") for i in isas) + " |")
    return "\n".join(lines + [""] + [f"* {h}" for h in header])


def _child(arguments: str) -> None:
    data = json.loads(arguments)
    args = IsaBenchArguments(**data)
    result = measure_variant(args, log=lambda line: print(line, flush=True))
    print(_MARK + json.dumps(result), flush=True)


if __name__ == "__main__":
    _child(sys.argv[1])
