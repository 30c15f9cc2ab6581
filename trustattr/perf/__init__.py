"""Speed measurements of the compiled kernels and of attribution (``trustattr bench``).

Every measurement runs its baseline in the same process and reports a ratio, plus the share of
this machine's peak (GEMM FLOP/s or memory read bandwidth) measured in the same run.
"""
