// Argument checks shared by the CPU and CUDA launchers. Every message names the
// op, the argument, what was expected and what came.
#pragma once

#include <ATen/ATen.h>

#include <optional>
#include <sstream>
#include <string>
#include <vector>

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

inline void check_same_dtype(const at::Tensor& a, const at::Tensor& b, const char* op,
                             const char* arg_a, const char* arg_b) {
  TORCH_CHECK_TYPE(a.scalar_type() == b.scalar_type(), op, ": arguments '", arg_a, "' and '", arg_b,
                   "' must have the same dtype, got ", a.scalar_type(), " and ", b.scalar_type());
}

// Size `dim_a` of a must equal size `dim_b` of b; `what` names the dimension.
inline void check_same_size(const at::Tensor& a, int64_t dim_a, const at::Tensor& b, int64_t dim_b,
                            const char* op, const char* arg_a, const char* arg_b, const char* what) {
  TA_CHECK_ARG(a.size(dim_a) == b.size(dim_b), op, arg_b, "must have the same ", what, " as '",
               arg_a, "' (", a.size(dim_a), "), got shape ", shape_str(b), " vs ", shape_str(a));
}

// Validates optional row->segment ids ([rows] int64, values in [0, num_segments)) and
// returns the number of output rows: num_segments with segments, `rows` without
// (num_segments must then be -1, the schema default). Reads the ids (CPU only).
inline int64_t check_segments(const std::optional<at::Tensor>& segments, int64_t num_segments,
                              int64_t rows, const at::Tensor& like, const char* like_arg,
                              const char* op) {
  if (!segments.has_value()) {
    TA_CHECK_ARG(num_segments == -1, op, "num_segments",
                 "must be None when 'segments' is None, got ", num_segments);
    return rows;
  }
  const at::Tensor& s = *segments;
  check_same_device(like, s, op, like_arg, "segments");
  TORCH_CHECK_TYPE(s.scalar_type() == at::kLong, op,
                   ": argument 'segments' must be an int64 tensor, got ", s.scalar_type());
  TA_CHECK_ARG(s.dim() == 1 && s.size(0) == rows, op, "segments", "must have shape [", rows,
               "] (one id per row), got shape ", shape_str(s));
  TA_CHECK_ARG(num_segments >= 1, op, "num_segments", "must be >= 1 when 'segments' is given, got ",
               num_segments);
  if (rows > 0 && s.device().is_cpu()) {
    const at::Tensor c = s.contiguous();
    const int64_t* ids = c.data_ptr<int64_t>();
    for (int64_t r = 0; r < rows; ++r)
      TA_CHECK_ARG(ids[r] >= 0 && ids[r] < num_segments, op, "segments",
                   "values must lie in [0, num_segments) = [0, ", num_segments, "), got ", ids[r],
                   " at row ", r);
  }
  return num_segments;
}

// Column boundaries of DataInf's per-layer blocks: [0, b1, ..., k], strictly
// increasing. None means one block [0, k].
inline std::vector<int64_t> check_blocks(at::OptionalIntArrayRef blocks, int64_t k, const char* op) {
  if (!blocks.has_value()) return {0, k};
  const std::vector<int64_t> b(blocks->begin(), blocks->end());
  TA_CHECK_ARG(b.size() >= 2 && b.front() == 0 && b.back() == k, op, "blocks",
               "must be column boundaries [0, ..., k] starting at 0 and ending at k = ", k, ", got ",
               *blocks);
  for (size_t i = 1; i < b.size(); ++i)
    TA_CHECK_ARG(b[i] > b[i - 1], op, "blocks", "must be strictly increasing, got ", *blocks);
  return b;
}

// Output dtype of every sketch: float64 for float64 input, float32 otherwise.
inline at::ScalarType sketch_out_dtype(at::ScalarType in) {
  return in == at::kDouble ? at::kDouble : at::kFloat;
}

}  // namespace trustattr
