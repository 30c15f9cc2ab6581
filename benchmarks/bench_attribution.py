"""Attribution throughput (pairs/s) vs a plain forward+backward on the same pairs: see trustattr.perf.attribution.

    python benchmarks/bench_attribution.py --models tiny,smol --pairs 32 --out out/bench_attribution.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from trustattr.paths import atomic_path
from trustattr.perf.attribution import AttributionBenchArguments, markdown, run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="tiny,smol", help="comma-separated: tiny, smol, checkpoint paths")
    parser.add_argument("--pairs", type=int, default=32, help="HH pairs per pass")
    parser.add_argument("--batch-size", type=int, default=8, help="pairs per batch")
    parser.add_argument("--max-length", type=int, default=192, help="max tokens of prompt + response")
    parser.add_argument("--last-k-blocks", type=int, default=4, help="tracked transformer blocks")
    parser.add_argument("--k", type=int, default=16, help="factored projection size per side")
    parser.add_argument("--reps", type=int, default=3, help="alternating repetitions of each pass")
    parser.add_argument("--out", type=Path, default=None, help="write the raw results as JSON here")
    ns = parser.parse_args()
    args = AttributionBenchArguments(models=[m for m in ns.models.split(",") if m], pairs=ns.pairs,
                                     batch_size=ns.batch_size, max_length=ns.max_length,
                                     last_k_blocks=ns.last_k_blocks, k=ns.k, reps=ns.reps)
    result = run(args)
    print(f"machine: {result['machine']}")
    print(markdown(result))
    if ns.out is not None:
        with atomic_path(ns.out) as tmp:
            tmp.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
