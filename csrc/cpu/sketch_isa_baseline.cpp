// Baseline variant of the CPU sketch kernels: whatever the compiler targets by
// default (SSE2 on x86-64, NEON on aarch64), plus the run-time ISA dispatch.
#define TA_ISA_NS isa_baseline
#define TA_VEC_BYTES 16  // SSE2 (x86-64) or NEON (aarch64)
#include "sketch_cpu_impl.h"
TA_SKETCH_DEFINE_ENTRY_POINT(baseline)

namespace trustattr::cpu {
namespace {
enum class Isa { kAvx512, kAvx2, kBaseline };

// TRUSTATTR_CPU_ISA=avx2|baseline forces a narrower variant (tests use it to
// check that every variant draws the same matrix).
Isa detect_isa() {
  const char* forced = getenv("TRUSTATTR_CPU_ISA");
  if (forced != nullptr && strcmp(forced, "baseline") == 0) return Isa::kBaseline;
  const bool allow_avx512 = forced == nullptr || strcmp(forced, "avx2") != 0;
#if defined(__x86_64__)
  __builtin_cpu_init();
  if (allow_avx512 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") &&
      __builtin_cpu_supports("fma") && __builtin_cpu_supports("bmi2"))
    return Isa::kAvx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
      __builtin_cpu_supports("bmi2"))
    return Isa::kAvx2;
#else
  (void)allow_avx512;
#endif
  return Isa::kBaseline;
}

Isa selected_isa() {
  static const Isa isa = detect_isa();
  return isa;
}
}  // namespace

const char* sketch_isa() {
  switch (selected_isa()) {
    case Isa::kAvx512: return "avx512";
    case Isa::kAvx2: return "avx2";
    default: return "baseline";
  }
}

void sketch_run(const SketchArgs& args) {
  switch (selected_isa()) {
#if defined(__x86_64__)
    case Isa::kAvx512: return sketch_run_avx512(args);
    case Isa::kAvx2: return sketch_run_avx2(args);
#endif
    default: return sketch_run_baseline(args);
  }
}

}  // namespace trustattr::cpu
