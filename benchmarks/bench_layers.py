"""Gradient sketches of one linear layer vs the torch formulations peers use: see trustattr.perf.layers.

    python benchmarks/bench_layers.py                       # issue 5's target shapes (~30 s)
    python benchmarks/bench_layers.py --factored 4,128,256,256,32,32 --outer 4,64,128,128,512 --no-memory
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from trustattr.paths import atomic_path
from trustattr.perf.layers import LayersBenchArguments, markdown, run


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]


def main() -> None:
    defaults = LayersBenchArguments()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--factored", default=",".join(map(str, defaults.factored)),
                        help="project_factored shape: N,T,d_in,d_out,k_in,k_out")
    parser.add_argument("--outer", default=",".join(map(str, defaults.outer)), help="project_outer shape: N,T,d_in,d_out,k")
    parser.add_argument("--dtype", default=defaults.dtype, help="dtype of a and g")
    parser.add_argument("--reps", type=int, default=defaults.reps, help="interleaved timed runs of each method")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory measurements")
    parser.add_argument("--out", type=Path, default=None, help="write the raw results as JSON here")
    ns = parser.parse_args()
    args = LayersBenchArguments(factored=_ints(ns.factored), outer=_ints(ns.outer), dtype=ns.dtype, reps=ns.reps,
                                memory=not ns.no_memory)
    result = run(args)
    print(f"machine: {result['machine']}")
    print(markdown(result))
    if ns.out is not None:
        with atomic_path(ns.out) as tmp:
            tmp.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
