// Plain-data interface of the CPU sketch kernels. The kernels themselves are
// compiled three times (AVX-512, AVX2, baseline) from sketch_cpu_impl.h and see
// no at::Tensor; the launcher (project_cpu.cpp) validates and fills this struct.
#pragma once

#include <cstdint>

#include "../elem.h"
#include "../sketch_rng.h"

namespace trustattr::cpu {

struct SketchArgs {
  // Input rows. Forward: x is [n, d] (features). Transposed: x is [n, k].
  const void* x;
  int64_t x_stride_row;  // in elements
  int64_t x_stride_col;  // in elements
  Elem x_elem;
  // Output, contiguous row-major; float64 when x is float64, else float32.
  // Forward: [n, k]. Transposed: [n, d].
  void* out;
  int64_t n;
  int64_t d;  // number of input features (columns of x in the forward)
  int64_t k;  // sketch dimension
  int64_t feature_offset;
  int64_t seed;
  SketchKind kind;
  int64_t nnz;                   // sjlt only
  double scale;                  // 1/sqrt(k) dense, 1/sqrt(nnz) sjlt
  const float* gaussian_table;   // kGaussianTableSize quantiles; gaussian only
  int num_threads;
  bool transposed;
};

// Writes args.out (does not accumulate). Picks the widest instruction set
// this CPU supports; every variant computes the same random matrix.
void sketch_run(const SketchArgs& args);

// Name of the instruction-set variant sketch_run uses on this CPU.
const char* sketch_isa();

// Per-ISA entry points (defined once per variant translation unit).
void sketch_run_avx512(const SketchArgs& args);
void sketch_run_avx2(const SketchArgs& args);
void sketch_run_baseline(const SketchArgs& args);

}  // namespace trustattr::cpu
