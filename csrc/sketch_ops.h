// Declarations shared between the op registration (trustattr.cpp) and the
// per-backend launchers of the projection ops.
#pragma once

#include <ATen/ATen.h>

#include <cmath>

#include "sketch_rng.h"

namespace trustattr {

// 1/sqrt(k) for dense sketches, 1/sqrt(nnz) for sjlt.
inline double sketch_scale(SketchKind kind, int64_t k, int64_t nnz) {
  return 1.0 / std::sqrt(static_cast<double>(kind == SketchKind::kSjlt ? nnz : k));
}

// Materializes R [D, k] on `device`. The CUDA variant is installed by the CUDA
// translation unit when the extension is built with CUDA; nullptr otherwise.
using RandomMatrixFn = at::Tensor (*)(int64_t D, int64_t k, int64_t seed, SketchKind kind,
                                      int64_t feature_offset, int64_t nnz, at::ScalarType dtype,
                                      at::Device device);
at::Tensor random_matrix_cpu(int64_t D, int64_t k, int64_t seed, SketchKind kind,
                             int64_t feature_offset, int64_t nnz, at::ScalarType dtype,
                             at::Device device);
RandomMatrixFn& random_matrix_cuda_hook();

}  // namespace trustattr
