// AVX-512 variant of the CPU sketch kernels. This file includes no torch
// header: everything compiled under the target pragma stays in this file.
#if defined(__x86_64__)
#pragma GCC target("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma,bmi,bmi2,f16c")
#define TA_ISA_NS isa_avx512
#define TA_VEC_BYTES 64
#include "sketch_cpu_impl.h"
TA_SKETCH_DEFINE_ENTRY_POINT(avx512)
#endif
