// Plain-data interface of the CPU kernels of issue 5: gradient sketches of
// linear layers (project_factored, project_outer) and scoring (score,
// topk_score, datainf_scores). Like sketch_cpu.h, the kernels are compiled once
// per instruction set (attr_isa_*.cpp) from grad_sketch_impl.h, score_impl.h,
// topk_impl.h and datainf_impl.h and see no at::Tensor; the launchers
// (grad_sketch_cpu.cpp, score_cpu.cpp) validate arguments and fill these structs.
#pragma once

#include <cstdint>

#include "../sketch_rng.h"
#include "sketch_cpu.h"

namespace trustattr::cpu {

// The two factors of a linear layer's per-sample gradients, G_n = sum_t g[n,t] a[n,t]^T.
// Both are [n, t, d] with a unit stride on the last dimension and the same element type.
struct GradFactors {
  const void* a;  // [n, t, d_in]
  int64_t a_stride_n, a_stride_t;
  const void* g;  // [n, t, d_out]
  int64_t g_stride_n, g_stride_t;
  Elem elem;
  int64_t n, t, d_in, d_out;
  // Output row of every input row (values in [0, rows_out)), or nullptr for the
  // identity. Rows that share an output row are summed as if their tokens were
  // concatenated in row order.
  const int64_t* segments;
  int64_t rows_out;
};

// What both gradient sketches take: the factors, the output scale, the output
// [rows_out, width] (float64 for float64 input, else float32) and the thread count.
struct GradSketchArgs {
  GradFactors in;
  double scale;
  void* out;
  int num_threads;
};

// scale = 1 / sqrt(k_in * k_out), width = k_out * k_in.
struct FactoredArgs : GradSketchArgs {
  int64_t k_in, k_out;
  int64_t seed_in, seed_out;  // already derived: derive_seed(seed, 0), derive_seed(seed, 1)
};

// scale = 1 / sqrt(k), width = k.
struct OuterArgs : GradSketchArgs {
  int64_t k, seed, feature_offset;
};

// Rows of train scored against queries. Train rows have a unit column stride
// and any row stride; query is contiguous in the compute type (float64 when
// f64, else float32) with `query_stride` elements per row.
struct ScoreArgs {
  const void* train;
  int64_t train_stride;
  Elem train_elem;
  int64_t n, k;
  const void* query;
  int64_t query_stride;
  int64_t m;
  bool f64;
  bool normalize;
  int num_threads;
};

// score: out [n, m] in the compute type.
// topk: values [m, topk] (compute type) and indices [m, topk] int64, best first.
struct TopkArgs {
  ScoreArgs s;
  int64_t topk;
  bool largest;
  void* values;
  int64_t* indices;
};

// DataInf (paper.md 4.1): blocks [num_blocks + 1] column boundaries; query [k]
// in the compute type; damping < 0 selects the per-block default.
struct DatainfArgs {
  ScoreArgs s;  // m == 1, normalize == false
  const int64_t* blocks;
  int64_t num_blocks;
  double damping;
  void* out;  // [n]
};

void project_factored_run(const FactoredArgs& args);
void project_outer_run(const OuterArgs& args);
void score_run(const ScoreArgs& args, void* out);
void topk_score_run(const TopkArgs& args);
void datainf_run(const DatainfArgs& args);

// Per-ISA entry points (one definition per attr_isa_*.cpp).
#define TA_ATTR_ENTRY_POINTS(suffix)                              \
  void project_factored_##suffix(const FactoredArgs& args);      \
  void project_outer_##suffix(const OuterArgs& args);            \
  void score_##suffix(const ScoreArgs& args, void* out);         \
  void topk_score_##suffix(const TopkArgs& args);                \
  void datainf_##suffix(const DatainfArgs& args);
TA_ATTR_ENTRY_POINTS(avx512)
TA_ATTR_ENTRY_POINTS(avx2)
TA_ATTR_ENTRY_POINTS(baseline)
#undef TA_ATTR_ENTRY_POINTS

}  // namespace trustattr::cpu
