"""Scoring kernels vs the torch formulations peers use: see trustattr.perf.scoring.

    python benchmarks/bench_scoring.py                      # issue 5's target: 10^6 x 1024 memory-mapped (~75 s)
    python benchmarks/bench_scoring.py --rows 100000 --score-rows 50000 --no-memory

Options: the fields of trustattr.perf.scoring.ScoringBenchArguments (--help lists them), plus --out.
"""

from trustattr.perf.scoring import ScoringBenchArguments, markdown, run
from trustattr.perf.script import bench_main

if __name__ == "__main__":
    bench_main(ScoringBenchArguments, run, markdown, __doc__)
