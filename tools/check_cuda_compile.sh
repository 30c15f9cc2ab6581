#!/usr/bin/env bash
# Compiles every csrc/cuda/*.cu with nvcc for sm_80 and sm_90 (-std=c++17, the flags torch's
# CUDAExtension uses), against the installed torch's headers -- a CPU-only torch works, with the
# stand-in header in tools/cuda_shim. Needs no GPU. Prints registers and spills per kernel.
#
#   tools/check_cuda_compile.sh              # all files
#   tools/check_cuda_compile.sh csrc/cuda/sparse.cu
#
# Exit status: 0 when every file compiles, or when nvcc is absent ("skipped"); 1 on any failure.
# Environment: NVCC, PYTHON, CUDA_CHECK_ARCHS (default "80 90"), CUDA_CHECK_STD (default c++17),
# CUDA_CHECK_THREADS (nvcc --threads, default 2), VERBOSE=1 (print the full ptxas report).
set -euo pipefail
NVCC=${NVCC:-$(command -v nvcc || true)}
[ -n "$NVCC" ] || { echo "check_cuda_compile: nvcc not found, skipped"; exit 0; }
PY=${PYTHON:-python}
ARCHS=${CUDA_CHECK_ARCHS:-"80 90"}
STD=${CUDA_CHECK_STD:-c++17}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
read -r -a TORCH_INC < <($PY -c "import torch.utils.cpp_extension as c; print(' '.join('-I'+p for p in c.include_paths()))")
PY_INC=$($PY -c "import sysconfig; print(sysconfig.get_paths()['include'])")
ABI=$($PY -c "import torch; print(int(torch._C._GLIBCXX_USE_CXX11_ABI))")
GENCODE=()
for a in $ARCHS; do GENCODE+=(-gencode "arch=compute_$a,code=sm_$a"); done
WORK=$(mktemp -d); trap 'rm -rf "$WORK"' EXIT

if [ $# -gt 0 ]; then FILES=("$@"); else FILES=("$ROOT"/csrc/cuda/*.cu); fi
rc=0; count=0
for f in "${FILES[@]}"; do
  [ -e "$f" ] || continue
  count=$((count + 1))
  start=$(date +%s)
  if "$NVCC" -c "$f" -o "$WORK/x.o" -std="$STD" -O3 -lineinfo "${GENCODE[@]}" -Xcompiler -fPIC \
       --threads "${CUDA_CHECK_THREADS:-2}" \
       -D_GLIBCXX_USE_CXX11_ABI="$ABI" -DTORCH_EXTENSION_NAME=_C -DTORCH_API_INCLUDE_EXTENSION_H \
       -D__CUDA_NO_HALF_OPERATORS__ -D__CUDA_NO_HALF_CONVERSIONS__ -D__CUDA_NO_BFLOAT16_CONVERSIONS__ \
       -D__CUDA_NO_HALF2_OPERATORS__ --expt-relaxed-constexpr -Xptxas -v \
       -I"$HERE/cuda_shim" -I"$ROOT/csrc" "${TORCH_INC[@]}" -I"$PY_INC" > "$WORK/log" 2>&1; then
    kernels=$(grep -c "Compiling entry function" "$WORK/log" || true)
    regs=$( (grep -o 'Used [0-9]* registers' "$WORK/log" || true) | awk '{print $2}' | sort -n | tail -1)
    spill=$( (grep -o '[0-9]* bytes spill stores' "$WORK/log" || true) | awk '{s += $1} END {print s + 0}')
    warn=$(grep -i "warning" "$WORK/log" | grep -c "$ROOT/csrc\|^csrc/" || true)  # ours, not torch's
    echo "check_cuda_compile: OK $(basename "$f") [sm ${ARCHS// /,}] $kernels kernels, max ${regs:-0} registers," \
         "$spill bytes spilled in total, $warn warnings, $(( $(date +%s) - start )) s"
    if [ "${VERBOSE:-0}" = 1 ] || [ "$warn" != 0 ]; then cat "$WORK/log"; fi
  else
    echo "check_cuda_compile: FAIL $(basename "$f")"; cat "$WORK/log"; rc=1
  fi
done
[ "$count" -gt 0 ] || echo "check_cuda_compile: no .cu files found"
exit $rc
