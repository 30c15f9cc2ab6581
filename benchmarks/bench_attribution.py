"""Attribution throughput (pairs/s) vs a plain forward+backward on the same pairs: see trustattr.perf.attribution.

    python benchmarks/bench_attribution.py --models tiny,smol --pairs 32 --out out/bench_attribution.json
Same as `trustattr bench attribution`.
"""

from trustattr.perf.attribution import AttributionBenchArguments, markdown, run
from trustattr.perf.script import bench_main

if __name__ == "__main__":
    bench_main(AttributionBenchArguments, run, markdown, __doc__)
