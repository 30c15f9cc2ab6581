#!/usr/bin/env bash
# One-call check of the CUDA kernels on a GPU machine (H100/H200: Python 3.12, torch 2.11+cu130,
# nvcc 13.0, no internet). About 9 minutes: build for sm_90, run the CUDA tests, time project and
# the issue-5 ops. Every step prints its tail and a failed step does not stop the next. Logs and
# results go to $OUT (default out/gpu_check):
#   env.log build.log tests.log attr_tests.log bench.log attr_bench.log
#   gpu_project.json gpu_project.md gpu_attr_ops.json gpu_attr_ops.md
#
#   bash benchmarks/gpu_check.sh                 # env build tests attr_tests bench attr_bench
#   STEPS="memcheck racecheck" bash benchmarks/gpu_check.sh   # compute-sanitizer on small calls of
#                                                # every kernel (opt-in: slow; needs a built extension)
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-out/gpu_check}
mkdir -p "$OUT"
PY=${PYTHON:-$(command -v python3 || command -v python)}
STEPS=${STEPS:-"env build tests attr_tests bench attr_bench"}
if [ -z "${CUDA_HOME:-}" ]; then  # torch guesses wrong when nvcc on PATH is a wrapper script
  for d in /usr/local/cuda /usr/local/cuda-13.0 /opt/cuda; do
    [ -x "$d/bin/nvcc" ] && { export CUDA_HOME=$d; break; }
  done
fi
echo "gpu_check: python=$PY CUDA_HOME=${CUDA_HOME:-unset} OUT=$OUT steps=[$STEPS]"

step() {  # step NAME LIMIT_SECONDS COMMAND...
  local name=$1 limit=$2 start rc
  shift 2
  case " $STEPS " in *" $name "*) ;; *) echo "=== $name: not requested"; return 0 ;; esac
  echo "=== $name (limit ${limit}s): $*"
  start=$(date +%s)
  timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
  rc=$?
  echo "=== $name: exit $rc after $(( $(date +%s) - start )) s (124 = time limit); last lines:"
  tail -n 25 "$OUT/$name.log"
  return 0
}

step env 60 bash -c "nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm --format=csv;
  $PY -c 'import sys, torch, setuptools; print(sys.version); print(\"torch\", torch.__version__, \"cuda\", torch.version.cuda,
  torch.cuda.get_device_name(0), torch.cuda.get_device_properties(0).multi_processor_count, \"SMs\"); print(\"setuptools\", setuptools.__version__)';
  nvcc --version | tail -2; command -v ninja || echo 'ninja missing (slower build)'"
step build 240 env TORCH_CUDA_ARCH_LIST=9.0 MAX_JOBS=16 TRUSTATTR_FORCE_CUDA=1 \
  "$PY" -m pip install --no-build-isolation --no-deps --no-index -e .
step tests 120 "$PY" -m pytest -q -rf --tb=line --maxfail=40 -p no:cacheprovider tests/ops/test_project_cuda.py
step attr_tests 120 "$PY" -m pytest -q -rf --tb=line --maxfail=40 -p no:cacheprovider tests/ops/test_attr_ops_cuda.py
step bench 180 "$PY" benchmarks/gpu_project.py --out "$OUT" --budget 120
step attr_bench 90 "$PY" benchmarks/gpu_attr_ops.py --out "$OUT" --budget 50

# Small calls that reach every kernel family and row-tile variant, for compute-sanitizer.
SMOKE='import torch, trustattr as t
for dt in (torch.float32, torch.bfloat16, torch.float16, torch.float64):
    for n, d, k in ((1, 70, 5), (20, 300, 130), (70, 1000, 64), (130, 129, 200)):
        x = torch.randn(n, d, device="cuda").to(dt)
        for kind in ("rademacher", "gaussian", "sjlt"):
            t.project(x, k, 1, kind, 3, 2 if k > 1 else 1); t.project_t(t.project(x, k, 1, kind).to(dt), d, 1, kind)
            t.random_matrix(d, k, 1, kind, 0, 2, device="cuda")
    for n, tok, d_in, d_out in ((1, 1, 3, 5), (5, 17, 70, 130), (3, 40, 300, 20)):
        a, g = torch.randn(n, tok, d_in, device="cuda").to(dt), torch.randn(n, tok, d_out, device="cuda").to(dt)
        seg = torch.arange(n, device="cuda") % 2
        t.ops.project_factored(a, g, 9, 70, 1, seg, 3); t.ops.project_outer(a, g, 33, 1, 5); t.ops.segment_sum(a[:, 0], seg, 2)
    train, query = torch.randn(300, 77, device="cuda").to(dt), torch.randn(11, 77, device="cuda").to(dt)
    t.ops.score(train, query, True); t.ops.topk_score(train, query, 7); t.ops.topk_score(train, query[:3], 300, largest=False)
    t.ops.datainf_scores(train, query[0]); t.ops.datainf_scores(train, query[0], 0.1, [0, 30, 77])
torch.cuda.synchronize(); print("smoke ok")'
step memcheck 240 compute-sanitizer --tool memcheck --error-exitcode 3 "$PY" -c "$SMOKE"
step racecheck 400 compute-sanitizer --tool racecheck --error-exitcode 3 "$PY" -c "$SMOKE"

echo "=== gpu_check summary"
grep -h -E "passed|failed|error" "$OUT/tests.log" "$OUT/attr_tests.log" 2>/dev/null | tail -6
[ -f "$OUT/gpu_project.md" ] && cat "$OUT/gpu_project.md"
[ -f "$OUT/gpu_attr_ops.md" ] && cat "$OUT/gpu_attr_ops.md"
exit 0
