// Argument checks shared by the CPU and CUDA launchers. Every message names the
// op, the argument, what was expected and what came.
#pragma once

#include <ATen/ATen.h>

#include <sstream>
#include <string>

#include "sketch_rng.h"

namespace trustattr {

inline std::string shape_str(const at::Tensor& t) {
  std::ostringstream s;
  s << t.sizes();
  return s.str();
}

// Bad values raise ValueError in Python, bad dtypes TypeError (as the Python
// fallback does), so callers can catch the same thing on every backend.
#define TA_CHECK_ARG(cond, op, arg, ...) \
  TORCH_CHECK_VALUE(cond, op, ": argument '", arg, "' ", __VA_ARGS__)

inline void check_rank(const at::Tensor& t, int64_t rank, const char* op, const char* arg,
                       const char* layout) {
  TA_CHECK_ARG(t.dim() == rank, op, arg, "must be a ", rank, "-D tensor ", layout, ", got a ",
               t.dim(), "-D tensor of shape ", shape_str(t));
}

inline void check_floating(const at::Tensor& t, const char* op, const char* arg) {
  const auto dt = t.scalar_type();
  TORCH_CHECK_TYPE(dt == at::kFloat || dt == at::kDouble || dt == at::kBFloat16 || dt == at::kHalf,
                   op, ": argument '", arg, "' must be float32, float64, bfloat16 or float16, got ",
                   dt);
}

inline void check_positive(int64_t value, const char* op, const char* arg) {
  TA_CHECK_ARG(value >= 1, op, arg, "must be >= 1, got ", value);
}

inline void check_same_device(const at::Tensor& a, const at::Tensor& b, const char* op,
                              const char* arg_a, const char* arg_b) {
  TORCH_CHECK_VALUE(a.device() == b.device(), op, ": arguments '", arg_a, "' and '", arg_b,
              "' must be on the same device, got ", a.device(), " and ", b.device());
}

inline SketchKind parse_kind(c10::string_view kind, const char* op) {
  if (kind == "rademacher") return SketchKind::kRademacher;
  if (kind == "gaussian") return SketchKind::kGaussian;
  if (kind == "sjlt") return SketchKind::kSjlt;
  TORCH_CHECK_VALUE(false, op, ": argument 'kind' must be one of 'rademacher', 'gaussian', 'sjlt', got '",
              std::string(kind), "'");
}

// Validates the sketch arguments common to project, project_t and random_matrix.
inline SketchKind check_sketch(c10::string_view kind, int64_t d, int64_t k, int64_t feature_offset,
                               int64_t nnz, const char* op) {
  const SketchKind sk = parse_kind(kind, op);
  check_positive(k, op, "k");
  check_positive(d, op, "D");
  TA_CHECK_ARG(feature_offset >= 0, op, "feature_offset", "must be >= 0, got ", feature_offset);
  check_positive(nnz, op, "nnz");
  if (sk == SketchKind::kSjlt)
    TA_CHECK_ARG(nnz <= k, op, "nnz", "must be <= k (", k, ") for kind 'sjlt', got ", nnz);
  return sk;
}

// Output dtype of every sketch: float64 for float64 input, float32 otherwise.
inline at::ScalarType sketch_out_dtype(at::ScalarType in) {
  return in == at::kDouble ? at::kDouble : at::kFloat;
}

}  // namespace trustattr
