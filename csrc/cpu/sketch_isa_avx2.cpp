// AVX2 + FMA variant of the CPU sketch kernels (no torch headers, see avx512).
#if defined(__x86_64__)
#pragma GCC target("avx2,fma,bmi,bmi2,f16c")
#define TA_ISA_NS isa_avx2
#define TA_VEC_BYTES 32
#include "sketch_cpu_impl.h"
TA_SKETCH_DEFINE_ENTRY_POINT(avx2)
#endif
