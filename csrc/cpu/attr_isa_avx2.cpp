// AVX2 + FMA variant of the gradient-sketch and scoring kernels (no torch headers, see avx512).
#if defined(__x86_64__)
#pragma GCC target("avx2,fma,bmi,bmi2,f16c")
#define TA_ISA_NS attr_avx2
#define TA_VEC_BYTES 32
#include "grad_sketch_impl.h"
#include "score_impl.h"
#include "topk_impl.h"
#include "datainf_impl.h"
#include "attr_isa_entry.h"
TA_ATTR_DEFINE_ENTRY_POINTS(avx2, attr_avx2)
#endif
