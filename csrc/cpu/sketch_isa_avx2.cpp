// AVX2 + FMA variant of the CPU sketch kernels (no torch headers, see avx512).
#if defined(__x86_64__)
#pragma GCC target("avx2,fma,bmi,bmi2,f16c")
#define TA_ISA_NS isa_avx2
#include "sketch_cpu_impl.h"

namespace trustattr::cpu {
void sketch_run_avx2(const SketchArgs& args) { isa_avx2::run(args); }
}  // namespace trustattr::cpu
#endif
