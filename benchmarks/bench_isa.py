"""Every CPU kernel family against its torch formulation, once per instruction-set variant, one process
each (issue 17): see trustattr.perf.isa.

    python benchmarks/bench_isa.py                                   # issue 17's shapes, avx512,avx2,baseline
    python benchmarks/bench_isa.py --isas avx2 --ops score,topk_score --threads 2 --clock wall
Same matrix as `trustattr bench kernels --isa avx512,avx2,baseline`.
"""

from trustattr.perf import isa
from trustattr.perf.script import bench_main

if __name__ == "__main__":
    bench_main(isa.IsaBenchArguments, isa.run, isa.markdown, __doc__)
