// Baseline variant of the gradient-sketch and scoring kernels, plus the
// run-time dispatch: the variant is the one sketch_isa() picked for project
// (so TRUSTATTR_CPU_ISA=avx2|baseline forces both families alike).
#include <string.h>

#define TA_ISA_NS attr_baseline
#define TA_VEC_BYTES 16  // SSE2 (x86-64) or NEON (aarch64)
#include "grad_sketch_impl.h"
#include "score_impl.h"
#include "topk_impl.h"
#include "datainf_impl.h"
#include "attr_isa_entry.h"
TA_ATTR_DEFINE_ENTRY_POINTS(baseline, attr_baseline)

namespace trustattr::cpu {
namespace {
enum class AttrIsa { kAvx512, kAvx2, kBaseline };

AttrIsa attr_isa() {
  static const AttrIsa isa = [] {
    const char* name = sketch_isa();
    if (strcmp(name, "avx512") == 0) return AttrIsa::kAvx512;
    if (strcmp(name, "avx2") == 0) return AttrIsa::kAvx2;
    return AttrIsa::kBaseline;
  }();
  return isa;
}
}  // namespace

#if defined(__x86_64__)
#define TA_ATTR_DISPATCH(fn, ...)                                    \
  switch (attr_isa()) {                                              \
    case AttrIsa::kAvx512: return fn##_avx512(__VA_ARGS__);          \
    case AttrIsa::kAvx2: return fn##_avx2(__VA_ARGS__);              \
    default: return fn##_baseline(__VA_ARGS__);                      \
  }
#else
#define TA_ATTR_DISPATCH(fn, ...) return fn##_baseline(__VA_ARGS__);
#endif

void project_factored_run(const FactoredArgs& a) { TA_ATTR_DISPATCH(project_factored, a) }
void project_outer_run(const OuterArgs& a) { TA_ATTR_DISPATCH(project_outer, a) }
void score_run(const ScoreArgs& a, void* out) { TA_ATTR_DISPATCH(score, a, out) }
void topk_score_run(const TopkArgs& a) { TA_ATTR_DISPATCH(topk_score, a) }
void datainf_run(const DatainfArgs& a) { TA_ATTR_DISPATCH(datainf, a) }
#undef TA_ATTR_DISPATCH

}  // namespace trustattr::cpu
