"""GPU speed of ``project`` / ``project_t`` (run by benchmarks/gpu_check.sh on an H100/H200).

Times the CUDA kernels with CUDA events (median of >= 3 runs after a warm-up) and reports, in the
same run: effective TFLOP/s (2*N*D*k/t) and its share of the measured bf16 torch.mm peak (8192^3)
and of the 989 TFLOP/s datasheet peak; GB/s read for sjlt against a measured device copy; the ratio
to torch.mm with R materialized where [D, k] fits; and fast_jl (TRAK's CUDA kernel) when importable.
Every configuration runs in its own try block, so one failure never stops the rest, and a global
time budget skips what is left (printed). Results: <out>/gpu_project.json and gpu_project.md.

    python benchmarks/gpu_project.py --out out/gpu_check --budget 200
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from trustattr import ops
from trustattr.paths import atomic_path
from trustattr.perf.timing import machine_info

DATASHEET_BF16_TFLOPS = 989.0  # H100 SXM and H200, dense
DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32}


def cuda_seconds(fn: Callable[[], object], reps: int = 3, min_seconds: float = 0.2, max_reps: int = 50) -> float:
    """Median seconds of fn() on the current stream (CUDA events), after one warm-up."""
    fn()
    torch.cuda.synchronize()
    samples: list[float] = []
    start = time.perf_counter()
    while len(samples) < reps or (time.perf_counter() - start < min_seconds and len(samples) < max_reps):
        begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        begin.record()
        fn()
        end.record()
        end.synchronize()
        samples.append(begin.elapsed_time(end) / 1e3)
    return statistics.median(samples)


def measure_peaks() -> dict[str, float]:
    a = torch.randn(8192, 8192, device="cuda").to(torch.bfloat16)
    b = torch.randn(8192, 8192, device="cuda").to(torch.bfloat16)
    mm = cuda_seconds(lambda: a @ b, reps=10)
    src = torch.randn(1 << 30, device="cuda")  # 4 GiB
    dst = torch.empty_like(src)
    copy = cuda_seconds(lambda: dst.copy_(src), reps=10)
    return {"bf16_mm_tflops": 2 * 8192**3 / mm / 1e12, "copy_gbs": 2 * src.numel() * 4 / copy / 1e9}


def random_input(N: int, D: int, dtype: torch.dtype) -> torch.Tensor:
    return torch.randn(N, D, device="cuda", dtype=torch.float32).to(dtype)  # never zeros


FAST_JL = importlib.util.find_spec("fast_jl") is not None and importlib.util.find_spec("trak") is not None


def fast_jl_projector(D: int, k: int, N: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """TRAK's CudaProjector over fast_jl (fp16 input, rows in groups of <= 32, k a multiple of 512)."""
    from trak.projectors import CudaProjector, ProjectionType

    proj = CudaProjector(grad_dim=D, proj_dim=k, seed=0, proj_type=ProjectionType.rademacher, device="cuda",
                         max_batch_size=min(N, 32))
    return lambda x: proj.project(x.half(), model_id=0)


class Bench:
    """Runs configurations one by one, rewriting <out>/<name>.{json,md} after each."""

    name = "gpu_project"

    def __init__(self, info: dict[str, object], peaks: dict[str, float], out: Path, budget: float) -> None:
        self.info, self.peaks, self.out = info, peaks, out
        self.deadline = time.perf_counter() + budget
        self.rows: list[dict[str, object]] = []
        self.notes: list[str] = []

    def note(self, text: str) -> None:
        print(text, flush=True)
        self.notes.append(text)

    def table(self) -> str:
        return markdown(self.info, self.peaks, self.rows, self.notes)

    def save(self) -> str:
        text = self.table()
        self.out.mkdir(parents=True, exist_ok=True)
        result = {"machine": self.info, "peaks": self.peaks, "rows": self.rows, "notes": self.notes}
        with atomic_path(self.out / f"{self.name}.json") as path:
            path.write_text(json.dumps(result, indent=1))
        with atomic_path(self.out / f"{self.name}.md") as path:
            path.write_text(text + "\n")
        return text

    def run(self, name: str, fn: Callable[[], dict[str, object]]) -> None:
        if time.perf_counter() > self.deadline:
            self.note(f"skipped (time budget): {name}")
            return
        try:
            row = {"name": name, **fn()}
            self.rows.append(row)
            print(format_row(row), flush=True)
        except Exception as exc:  # a failure is reported and the next configuration runs
            self.note(f"FAILED {name}: {type(exc).__name__}: {str(exc)[:300]}")
        finally:
            torch.cuda.empty_cache()
            self.save()

    def baseline(self, row: dict[str, object], name: str, ours_ms: float, fn: Callable[[], object]) -> None:
        """Adds <name>_ms and speedup_vs_<name> to row; a failure (e.g. out of memory) only drops them."""
        try:
            row[f"{name}_ms"] = 1e3 * cuda_seconds(fn)
            row[f"speedup_vs_{name}"] = row[f"{name}_ms"] / ours_ms
        except Exception as exc:
            row[f"{name}_error"] = f"{type(exc).__name__}: {str(exc)[:200]}"
        torch.cuda.empty_cache()

    def dense(self, kind: str, dtype: str, N: int, D: int, k: int, transposed: bool = False) -> None:
        def body() -> dict[str, object]:
            if transposed:
                y = random_input(N, k, DTYPES[dtype])
                t = cuda_seconds(lambda: ops.project_t(y, D, 0, kind))
            else:
                x = random_input(N, D, DTYPES[dtype])
                t = cuda_seconds(lambda: ops.project(x, k, 0, kind))
            tflops = 2 * N * D * k / t / 1e12
            row: dict[str, object] = {"op": "project_t" if transposed else "project", "kind": kind, "dtype": dtype,
                                      "N": N, "D": D, "k": k, "ms": 1e3 * t, "tflops": tflops,
                                      "pct_mm_peak": 100 * tflops / self.peaks["bf16_mm_tflops"],
                                      "pct_datasheet": 100 * tflops / DATASHEET_BF16_TFLOPS}
            free = torch.cuda.mem_get_info()[0]
            if not transposed and D * k * 2 + N * D * 2 <= 0.6 * free:  # bf16 R [D, k] and x fit
                def materialized() -> torch.Tensor:
                    return xb @ R

                xb = x.to(torch.bfloat16)
                R = torch.empty(D, k, device="cuda", dtype=torch.bfloat16).uniform_(-1, 1)
                self.baseline(row, "mm", row["ms"], materialized)
                del R, xb
            if not transposed and kind == "rademacher" and k % 512 == 0 and FAST_JL:
                self.baseline(row, "fast_jl", row["ms"], lambda: fast_jl_projector(D, k, N)(x))
            return row

        self.run(f"{'project_t' if transposed else 'project'} {kind} {dtype} N={N} D={D} k={k}", body)

    def sparse(self, dtype: str, N: int, D: int, k: int, nnz: int) -> None:
        def body() -> dict[str, object]:
            x = random_input(N, D, DTYPES[dtype])
            t = cuda_seconds(lambda: ops.project(x, k, 0, "sjlt", 0, nnz))
            gbs = x.numel() * x.element_size() / t / 1e9
            return {"op": "project", "kind": f"sjlt/{nnz}", "dtype": dtype, "N": N, "D": D, "k": k, "ms": 1e3 * t,
                    "gbs_read": gbs, "pct_copy_bw": 100 * gbs / self.peaks["copy_gbs"]}

        self.run(f"project sjlt nnz={nnz} {dtype} N={N} D={D} k={k}", body)

    def accuracy(self, kind: str, dtype: str) -> None:
        def body() -> dict[str, object]:
            x = random_input(64, 1 << 16, DTYPES[dtype])
            # R on the GPU (bit-identical to the CPU's, see tests/ops/test_project_cuda.py), float64 product.
            R = ops.random_matrix(1 << 16, 1024, 3, kind, dtype=torch.float64, device="cuda")
            ref = x.double() @ R
            err = ((ops.project(x, 1024, 3, kind).double() - ref).norm() / ref.norm()).item()
            return {"op": "accuracy", "kind": kind, "dtype": dtype, "N": 64, "D": 1 << 16, "k": 1024, "rel_err": err}

        self.run(f"accuracy {kind} {dtype}", body)


def format_row(row: dict[str, object]) -> str:
    head = f"{row.get('op', ''):>9} {row.get('kind', ''):>10} {row.get('dtype', ''):>4} N={row.get('N')} D={row.get('D')} k={row.get('k')}"
    if "rel_err" in row:
        return f"{head}  rel_err={row['rel_err']:.2e}"
    parts = [head, f"{row['ms']:9.3f} ms"]
    if "tflops" in row:
        parts.append(f"{row['tflops']:6.1f} TFLOP/s ({row['pct_mm_peak']:.0f}% of mm peak, {row['pct_datasheet']:.0f}% of 989)")
    if "gbs_read" in row:
        parts.append(f"{row['gbs_read']:7.1f} GB/s read ({row['pct_copy_bw']:.0f}% of copy bw)")
    for key in ("speedup_vs_mm", "speedup_vs_fast_jl"):
        if key in row:
            parts.append(f"{key.removeprefix('speedup_vs_')} x{row[key]:.2f}")
    return "  ".join(parts)


def markdown(info: dict[str, object], peaks: dict[str, float], rows: list[dict[str, object]], notes: list[str]) -> str:
    lines = [f"GPU: {info.get('gpu')}; torch {info['torch']}; commit {info['commit']}; {info['date']}.",
             f"Measured in the same run: bf16 torch.mm 8192^3 {peaks['bf16_mm_tflops']:.0f} TFLOP/s, "
             f"device copy {peaks['copy_gbs']:.0f} GB/s (read + write).", ""]
    lines += ["```", *map(format_row, rows), "```"]
    if notes:
        lines += ["", "Notes:", *[f"- {n}" for n in notes]]
    return "\n".join(lines)


def start(name: str, doc: str, budget: float) -> tuple[argparse.Namespace, dict[str, object]]:
    """The command line (--out, --budget) and machine info of a GPU benchmark script, printed as
    JSON; exits with "<name>: no CUDA device" without one."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("out/gpu_check"), help="folder for the results")
    parser.add_argument("--budget", type=float, default=budget, help="seconds; later configurations are skipped after")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit(f"{name}: no CUDA device")
    info = machine_info()
    info["extension"] = ops.extension_info()
    print(json.dumps(info), flush=True)
    return args, info


def main() -> None:
    args, info = start("gpu_project", __doc__, 200.0)
    peaks = measure_peaks()
    print(f"peaks: {peaks}", flush=True)
    bench = Bench(info, peaks, args.out, args.budget)
    if not FAST_JL:
        bench.note("fast_jl/trak not installed here: no fast_jl comparison (build traker[fast] for sm_90 and carry the wheels)")

    for kind in ("rademacher", "gaussian", "sjlt"):
        for dtype in ("bf16", "fp32"):
            bench.accuracy(kind, dtype)
    for N in (8, 32, 128, 256):  # the kernel issue's grid, bf16 first (the target shape)
        for k in (1024, 4096, 8192):
            bench.dense("rademacher", "bf16", N, 1 << 24, k)
    for N in (8, 32, 128, 256):  # against torch.mm with R materialized (fits at D = 2^21)
        for k in (1024, 4096, 8192):
            bench.dense("rademacher", "bf16", N, 1 << 21, k)
    for N in (8, 32, 128, 256):
        for k in (1024, 4096, 8192):
            bench.dense("rademacher", "fp32", N, 1 << 24, k)
    for N, k in ((32, 4096), (32, 8192), (128, 8192)):
        bench.dense("rademacher", "bf16", N, 1 << 27, k)
    bench.dense("rademacher", "fp32", 32, 1 << 27, 8192)
    for nnz in (1, 4):
        for N in (8, 32):
            bench.sparse("bf16", N, 1 << 27, 8192, nnz)
    bench.dense("rademacher", "bf16", 32, 1 << 24, 4096, transposed=True)
    bench.dense("gaussian", "bf16", 32, 1 << 24, 4096)

    print("\n" + bench.save())


if __name__ == "__main__":
    main()
