// Declarations shared between the op registration (trustattr.cpp) and the
// per-backend launchers of the projection ops.
#pragma once

#include <ATen/ATen.h>

#include <cmath>

#include "checks.h"
#include "sketch_call.h"
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

// The call of a checked project / project_t input x writing `out` ([N, k]
// forward, [N, D] transposed); `table` is the gaussian table in the backend's memory.
inline SketchCall sketch_call(const at::Tensor& x, const at::Tensor& out, int64_t d, int64_t k,
                              int64_t seed, SketchKind kind, int64_t feature_offset, int64_t nnz,
                              bool transposed, const float* table) {
  SketchCall c{};
  c.x = x.data_ptr();
  c.stride_row = x.stride(0);
  c.stride_col = x.stride(1);
  c.elem = elem_of(x.scalar_type());
  c.out = out.data_ptr();
  c.n = x.size(0);
  c.d = d;
  c.k = k;
  c.feature_offset = feature_offset;
  c.key = seed_key(seed, kind);
  c.kind = kind;
  c.nnz = nnz;
  c.scale = sketch_scale(kind, k, nnz);
  c.table = table;
  c.transposed = transposed;
  return c;
}

// A backend's shared body of project (transposed = false: x [N, D], d = D) and
// project_t (transposed = true: x = y [N, k]), and the two ops built on it.
using SketchBody = at::Tensor (*)(const at::Tensor& x, int64_t d, int64_t k, int64_t seed,
                                  c10::string_view kind, int64_t feature_offset, int64_t nnz,
                                  bool transposed);

template <SketchBody body>
at::Tensor project_op(const at::Tensor& x, int64_t k, int64_t seed, c10::string_view kind,
                      int64_t feature_offset, int64_t nnz) {
  return body(x, x.dim() == 2 ? x.size(1) : 0, k, seed, kind, feature_offset, nnz, false);
}

template <SketchBody body>
at::Tensor project_t_op(const at::Tensor& y, int64_t D, int64_t seed, c10::string_view kind,
                        int64_t feature_offset, int64_t nnz) {
  return body(y, D, y.dim() == 2 ? y.size(1) : 0, seed, kind, feature_offset, nnz, true);
}

}  // namespace trustattr
