// One project / project_t call as the kernels of every backend see it (no
// torch types). cpu::SketchArgs extends it with the thread count; the CUDA
// kernels take it as it is (cuda::SketchParams). The launchers fill it with
// sketch_call (sketch_ops.h).
#pragma once

#include <cstdint>

#include "elem.h"
#include "sketch_rng.h"

namespace trustattr {

struct SketchCall {
  // Input rows. Forward: x is [n, d] (features). Transposed: x is [n, k]. Any
  // strides, in elements.
  const void* x;
  int64_t stride_row;
  int64_t stride_col;
  Elem elem;
  // Output, contiguous row-major; float64 when x is float64, else float32.
  // Forward: [n, k]. Transposed: [n, d].
  void* out;
  int64_t n;
  int64_t d;  // features (rows of R)
  int64_t k;  // sketch dimension (columns of R)
  int64_t feature_offset;
  uint64_t key;  // seed_key(seed, kind)
  SketchKind kind;
  int64_t nnz;          // sjlt only
  double scale;         // 1/sqrt(k) dense, 1/sqrt(nnz) sjlt
  const float* table;   // kGaussianTableSize quantiles in the backend's memory; gaussian only
  bool transposed;
};

}  // namespace trustattr
