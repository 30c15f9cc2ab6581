"""Gradient sketches of one linear layer vs the torch formulations peers use: see trustattr.perf.layers.

    python benchmarks/bench_layers.py                       # issue 5's target shapes (~30 s)
    python benchmarks/bench_layers.py --factored 4,128,256,256,32,32 --outer 4,64,128,128,512 --no-memory

Options: the fields of trustattr.perf.layers.LayersBenchArguments (--help lists them), plus --out.
"""

from trustattr.perf.layers import LayersBenchArguments, markdown, run
from trustattr.perf.script import bench_main

if __name__ == "__main__":
    bench_main(LayersBenchArguments, run, markdown, __doc__)
