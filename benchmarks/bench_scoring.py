"""Scoring kernels vs the torch formulations peers use: see trustattr.perf.scoring.

    python benchmarks/bench_scoring.py                      # issue 5's target: 10^6 x 1024 memory-mapped (~75 s)
    python benchmarks/bench_scoring.py --rows 100000 --score-rows 50000 --no-memory
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from trustattr.paths import atomic_path
from trustattr.perf.scoring import ScoringBenchArguments, markdown, run


def main() -> None:
    defaults = ScoringBenchArguments()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=defaults.rows, help="train rows N in the memory-mapped file")
    parser.add_argument("--k", type=int, default=defaults.k, help="feature dimension k")
    parser.add_argument("--queries", type=int, default=defaults.queries, help="query rows M")
    parser.add_argument("--topk", type=int, default=defaults.topk, help="kept rows per query")
    parser.add_argument("--score-rows", type=int, default=defaults.score_rows, help="rows of the in-memory runs")
    parser.add_argument("--reps", type=int, default=defaults.reps, help="interleaved timed runs of each method")
    parser.add_argument("--directory", default="", help="where to write the temporary feature file")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory measurement")
    parser.add_argument("--out", type=Path, default=None, help="write the raw results as JSON here")
    ns = parser.parse_args()
    args = ScoringBenchArguments(rows=ns.rows, k=ns.k, queries=ns.queries, topk=ns.topk, score_rows=ns.score_rows,
                                 reps=ns.reps, memory=not ns.no_memory, directory=ns.directory)
    result = run(args)
    print(f"machine: {result['machine']}")
    print(markdown(result))
    if ns.out is not None:
        with atomic_path(ns.out) as tmp:
            tmp.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
