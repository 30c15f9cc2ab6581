// AVX-512 variant of the gradient-sketch and scoring kernels (issue 5). This
// file includes no torch header: everything compiled under the target pragma
// stays in this file (see grad_sketch_impl.h on std:: templates).
#if defined(__x86_64__)
#pragma GCC target("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma,bmi,bmi2,f16c")
#define TA_ISA_NS attr_avx512
#define TA_VEC_BYTES 64
#include "grad_sketch_impl.h"
#include "score_impl.h"
#include "topk_impl.h"
#include "datainf_impl.h"
#include "attr_isa_entry.h"
TA_ATTR_DEFINE_ENTRY_POINTS(avx512, attr_avx512)
#endif
