"""GPU speed and accuracy of the issue-5 ops (run by benchmarks/gpu_check.sh on an H100/H200).

project_factored, project_outer, segment_sum, score, topk_score and datainf_scores on CUDA tensors,
each timed with CUDA events (median after a warm-up, benchmarks/gpu_project.py's cuda_seconds) next
to the plain-torch way of computing the same thing on the same GPU (materialized random matrices and
fp32 matmuls, a materialized G, index_add_, torch.topk over the full score matrix, DataInf's formula
with matmuls), plus the float64 error of each op. Every configuration runs in its own try block and a
time budget skips the rest. Results: <out>/gpu_attr_ops.json and gpu_attr_ops.md.

    python benchmarks/gpu_attr_ops.py --out out/gpu_check --budget 60
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from gpu_project import (  # same folder
    DATASHEET_BF16_TFLOPS,
    Bench,
    cuda_seconds,
    measure_peaks,
    start,
)

from trustattr import ops

BF16 = torch.bfloat16


def randn(*shape: int, dtype: torch.dtype = BF16) -> torch.Tensor:
    return torch.randn(*shape, device="cuda").to(dtype)


def rel_err(out: torch.Tensor, ref: torch.Tensor) -> float:
    return ((out.double() - ref).norm() / ref.norm()).item()


def rademacher(d: int, k: int, seed: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """R [d, k] (+-1/sqrt(k)) on the GPU, the matrix the ops use."""
    return ops.random_matrix(d, k, seed, device="cuda", dtype=torch.float64).to(dtype)


class AttrBench(Bench):
    """Bench of gpu_project.py with its own files and table; rows carry op, shape, ms, rate and torch_ms."""

    name = "gpu_attr_ops"

    def table(self) -> str:
        lines = [f"GPU: {self.info.get('gpu')}; torch {self.info['torch']}; commit {self.info['commit']}; "
                 f"{self.info['date']}. bf16 torch.mm peak {self.peaks['bf16_mm_tflops']:.0f} TFLOP/s, device copy "
                 f"{self.peaks['copy_gbs']:.0f} GB/s (measured in the same run).", "",
                 "| op | dtype | shape | ms | rate | torch ms | speedup | float64 rel. error |",
                 "|---|---|---|---:|---:|---:|---:|---:|"]
        for r in self.rows:
            rate = f"{r['tflops']:.1f} TFLOP/s" if "tflops" in r else f"{r['gbs_read']:.0f} GB/s"
            torch_ms = f"{r['torch_ms']:.3f}" if "torch_ms" in r else r.get("torch_error", "-")
            speedup = f"x{r['speedup_vs_torch']:.2f}" if "speedup_vs_torch" in r else "-"
            err = f"{r['rel_err']:.1e}" if "rel_err" in r else "-"
            lines.append(f"| {r['op']} | {r['dtype']} | {r['shape']} | {r['ms']:.3f} | {rate} | {torch_ms} | "
                         f"{speedup} | {err} |")
        if self.notes:
            lines += ["", "Notes:", *[f"- {n}" for n in self.notes]]
        return "\n".join(lines)

    def timed(self, op: str, dtype: str, dims: dict[str, int], fn: Callable[[], object],
              torch_fn: Callable[[], object], *, flops: float = 0.0, bytes_read: float = 0.0,
              check: Callable[[], float] | None = None) -> None:
        """Times fn against torch_fn; the rate is TFLOP/s when flops is given, else GB/s read.
        dims names the shape (its N, D and k, when present, also go to gpu_project's console line)."""
        shape = " ".join(f"{name}={value}" for name, value in dims.items())

        def body() -> dict[str, object]:
            ms = 1e3 * cuda_seconds(fn)
            row: dict[str, object] = {"op": op, "kind": "", "dtype": dtype, "shape": shape, "ms": ms,
                                      **{key: dims[key] for key in ("N", "D", "k") if key in dims}}
            if flops:
                row["tflops"] = flops / ms / 1e9
                row["pct_mm_peak"] = 100 * row["tflops"] / self.peaks["bf16_mm_tflops"]
                row["pct_datasheet"] = 100 * row["tflops"] / DATASHEET_BF16_TFLOPS
            else:
                row["gbs_read"] = bytes_read / ms / 1e6
                row["pct_copy_bw"] = 100 * row["gbs_read"] / self.peaks["copy_gbs"]
            self.baseline(row, "torch", ms, torch_fn)
            if check is not None:
                row["rel_err"] = check()
            return row

        self.run(f"{op} {dtype} {shape}", body)


def factored(bench: AttrBench, N: int, T: int, d: int, k: int) -> None:
    a, g = randn(N, T, d), randn(N, T, d)
    r_in, r_out = rademacher(d, k, ops.derive_seed(0, 0)), rademacher(d, k, ops.derive_seed(0, 1))

    def torch_way(dtype: torch.dtype = torch.float32) -> torch.Tensor:
        pa, pg = a.to(dtype) @ r_in.to(dtype), g.to(dtype) @ r_out.to(dtype)  # [N, T, k]
        return torch.bmm(pg.transpose(1, 2), pa).flatten(1)

    shape = {"N": N, "T": T, "D": d, "k": k}
    bench.timed("project_factored", "bf16", shape, lambda: ops.project_factored(a, g, k, k, 0), torch_way,
                flops=2 * N * T * k * (2 * d + k),
                check=lambda: rel_err(ops.project_factored(a, g, k, k, 0), torch_way(torch.float64)))


def outer(bench: AttrBench, N: int, T: int, d: int, k: int) -> None:
    a, g = randn(N, T, d), randn(N, T, d)

    def materialized(dtype: torch.dtype = torch.float32) -> torch.Tensor:  # G [N, d*d], then project
        G = torch.bmm(g.to(dtype).transpose(1, 2), a.to(dtype)).flatten(1)
        return ops.project(G, k, 0)

    bench.timed("project_outer", "bf16", {"N": N, "T": T, "D": d, "k": k}, lambda: ops.project_outer(a, g, k, 0),
                materialized, flops=2 * N * d * d * (T + k),
                check=lambda: rel_err(ops.project_outer(a, g, k, 0), materialized(torch.float64)))


def segments(bench: AttrBench, rows: int, k: int) -> None:
    x = randn(rows, k, dtype=torch.float32)
    ids = torch.arange(rows, device="cuda") // 2  # DPO pairs
    bench.timed("segment_sum", "fp32", {"N": rows, "k": k, "S": rows // 2}, lambda: ops.segment_sum(x, ids, rows // 2),
                lambda: torch.zeros(rows // 2, k, device="cuda").index_add_(0, ids, x), bytes_read=x.numel() * 4,
                check=lambda: rel_err(ops.segment_sum(x, ids, rows // 2),
                                      torch.zeros(rows // 2, k, device="cuda", dtype=torch.float64)
                                      .index_add_(0, ids, x.double())))


def scores(bench: AttrBench, N: int, k: int, M: int, topk: int) -> None:
    train, query = randn(N, k), randn(M, k)
    head = train[: 1 << 16]  # the float64 checks use the first 65,536 rows

    def reference() -> torch.Tensor:
        return head.double() @ query.double().T

    bench.timed("score", "bf16", {"N": N, "k": k, "M": M}, lambda: ops.score(train, query),
                lambda: train.float() @ query.float().T, flops=2 * N * k * M,
                check=lambda: rel_err(ops.score(head, query), reference()))
    bench.timed("topk_score", "bf16", {"N": N, "k": k, "M": M, "topk": topk},
                lambda: ops.topk_score(train, query, topk),
                lambda: torch.topk((train.float() @ query.float().T).T, topk), flops=2 * N * k * M,
                check=lambda: rel_err(ops.topk_score(head, query, topk)[0], torch.topk(reference().T, topk)[0]))


def datainf(bench: AttrBench, N: int, k: int, width: int) -> None:
    train, query = randn(N, k), randn(k)
    blocks = list(range(0, k + 1, width))

    def formula(dtype: torch.dtype = torch.float32) -> torch.Tensor:
        g, v, out = train.to(dtype), query.to(dtype), torch.zeros(N, device="cuda", dtype=dtype)
        for lo, hi in zip(blocks, blocks[1:]):
            gl, vl = g[:, lo:hi], v[lo:hi]
            lam = 0.1 * gl.square().mean()
            coef = (gl @ vl) / (lam + gl.square().sum(1))
            out -= gl @ ((N * vl - coef @ gl) / (N * lam))
        return out

    bench.timed("datainf_scores", "bf16", {"N": N, "k": k, "blocks": len(blocks) - 1},
                lambda: ops.datainf_scores(train, query, None, blocks), formula, bytes_read=4 * N * k * 2,  # 4 passes
                check=lambda: rel_err(ops.datainf_scores(train, query, None, blocks), formula(torch.float64)))


def main() -> None:
    args, info = start("gpu_attr_ops", __doc__, 60.0)
    bench = AttrBench(info, measure_peaks(), args.out, args.budget)
    factored(bench, 32, 512, 2048, 64)   # LoGra-style, a mid-size layer
    outer(bench, 16, 256, 1024, 4096)    # exact JL of a 1024 x 1024 layer's gradient
    segments(bench, 1 << 16, 4096)       # DPO pairs
    scores(bench, 1 << 20, 2048, 8, 100)  # a million train rows against a few queries
    scores(bench, 1 << 18, 2048, 256, 100)
    datainf(bench, 1 << 20, 2048, 256)
    factored(bench, 8, 2048, 4096, 128)
    outer(bench, 4, 512, 4096, 8192)
    print("\n" + bench.save())


if __name__ == "__main__":
    main()
