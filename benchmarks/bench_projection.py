"""`project` vs torch.mm with R materialized, TRAK's and dattri's projectors: see trustattr.perf.projection.

    python benchmarks/bench_projection.py                    # issue 2's target shapes (D=2^20, k=2048; minutes)
    python benchmarks/bench_projection.py --features 65536 --k 512 --no-peers
Same as `trustattr bench projection`.
"""

from trustattr.cli.bench import app

if __name__ == "__main__":
    app(["projection", *__import__("sys").argv[1:]], prog_name="bench_projection.py")
