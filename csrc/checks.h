// Argument checks shared by the CPU and CUDA launchers, and the dtype mappings
// they share. Every message names the op, the argument, what was expected and
// what came. The check_<op> functions hold every check of an op that does not
// depend on the backend, in the order both backends run them; a CUDA launcher
// adds its own limits after them.
#pragma once

#include <ATen/ATen.h>

#include <cmath>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "elem.h"
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

inline void check_cuda(const at::Tensor& t, const char* op, const char* arg) {
  TA_CHECK_ARG(t.is_cuda(), op, arg, "must be a CUDA tensor, got device ", t.device());
}

// ------------------------------------------------------------ dtype mappings

// Output dtype of every sketch: float64 for float64 input, float32 otherwise.
inline at::ScalarType sketch_out_dtype(at::ScalarType in) {
  return in == at::kDouble ? at::kDouble : at::kFloat;
}

// Options of a sketch's output for the input `like`: its device, sketch_out_dtype.
inline at::TensorOptions sketch_options(const at::Tensor& like) {
  return like.options().dtype(sketch_out_dtype(like.scalar_type()));
}

// Compute (and output) dtype of the scoring ops: float64 when either input is float64, else float32.
inline at::ScalarType score_dtype(const at::Tensor& train, const at::Tensor& query) {
  return train.scalar_type() == at::kDouble || query.scalar_type() == at::kDouble ? at::kDouble
                                                                                   : at::kFloat;
}

// Element type of a tensor that passed check_floating, for the kernel interfaces.
inline Elem elem_of(at::ScalarType dt) {
  switch (dt) {
    case at::kFloat: return Elem::kF32;
    case at::kDouble: return Elem::kF64;
    case at::kBFloat16: return Elem::kBF16;
    default: return Elem::kF16;
  }
}

// ------------------------------------------------------------- per-op checks

// project (x [N, D] -> [N, k]) and project_t (y [N, k] -> [N, D]) share one body.
inline const char* sketch_op(bool transposed) { return transposed ? "project_t" : "project"; }
inline const char* sketch_arg(bool transposed) { return transposed ? "y" : "x"; }

inline SketchKind check_project(const at::Tensor& x, int64_t d, int64_t k, c10::string_view kind,
                                int64_t feature_offset, int64_t nnz, bool transposed) {
  const char* op = sketch_op(transposed);
  const char* arg = sketch_arg(transposed);
  check_rank(x, 2, op, arg, transposed ? "[N, k]" : "[N, D]");
  check_floating(x, op, arg);
  if (transposed) {
    TA_CHECK_ARG(x.size(1) == k, op, "y", "must have k columns, got shape ", shape_str(x));
  } else {
    TA_CHECK_ARG(x.size(1) >= 1, op, "x", "must have D >= 1 features, got shape ", shape_str(x));
  }
  return check_sketch(kind, d, k, feature_offset, nnz, op);
}

// a [N, T, d_in] and g [N, T, d_out] of the gradient sketches, and their segments.
// Returns the number of output rows.
inline int64_t check_grad_factors(const at::Tensor& a, const at::Tensor& g,
                                  const std::optional<at::Tensor>& segments, int64_t num_segments,
                                  const char* op) {
  check_rank(a, 3, op, "a", "[N, T, d_in]");
  check_rank(g, 3, op, "g", "[N, T, d_out]");
  check_same_device(a, g, op, "a", "g");
  check_floating(a, op, "a");
  check_floating(g, op, "g");
  check_same_dtype(a, g, op, "a", "g");
  check_same_size(a, 0, g, 0, op, "a", "g", "number of rows N");
  check_same_size(a, 1, g, 1, op, "a", "g", "number of tokens T");
  TA_CHECK_ARG(a.size(2) >= 1, op, "a", "must have d_in >= 1 features, got shape ", shape_str(a));
  TA_CHECK_ARG(g.size(2) >= 1, op, "g", "must have d_out >= 1 features, got shape ", shape_str(g));
  return check_segments(segments, num_segments, a.size(0), a, "a", op);
}

inline int64_t check_project_factored(const at::Tensor& a, const at::Tensor& g, int64_t k_in,
                                      int64_t k_out, const std::optional<at::Tensor>& segments,
                                      int64_t num_segments) {
  const char* op = "project_factored";
  check_positive(k_in, op, "k_in");
  check_positive(k_out, op, "k_out");
  return check_grad_factors(a, g, segments, num_segments, op);
}

inline int64_t check_project_outer(const at::Tensor& a, const at::Tensor& g, int64_t k,
                                   int64_t feature_offset, const std::optional<at::Tensor>& segments,
                                   int64_t num_segments) {
  const char* op = "project_outer";
  check_positive(k, op, "k");
  TA_CHECK_ARG(feature_offset >= 0, op, "feature_offset", "must be >= 0, got ", feature_offset);
  return check_grad_factors(a, g, segments, num_segments, op);
}

inline void check_segment_sum(const at::Tensor& x, const at::Tensor& segments, int64_t num_segments) {
  const char* op = "segment_sum";
  check_rank(x, 2, op, "x", "[R, k]");
  check_floating(x, op, "x");
  TA_CHECK_ARG(x.size(1) >= 1, op, "x", "must have k >= 1 columns, got shape ", shape_str(x));
  check_positive(num_segments, op, "num_segments");
  check_segments(segments, num_segments, x.size(0), x, "x", op);
}

// train [N, k] against query [M, k] (or [k] for DataInf).
inline void check_score_pair(const at::Tensor& train, const at::Tensor& query, const char* op,
                             bool vector_query) {
  check_rank(train, 2, op, "train", "[N, k]");
  check_rank(query, vector_query ? 1 : 2, op, "query", vector_query ? "[k]" : "[M, k]");
  check_same_device(train, query, op, "train", "query");
  check_floating(train, op, "train");
  check_floating(query, op, "query");
  TA_CHECK_ARG(train.size(1) >= 1, op, "train", "must have k >= 1 columns, got shape ", shape_str(train));
  check_same_size(train, 1, query, vector_query ? 0 : 1, op, "train", "query", "number of columns k");
}

inline void check_topk_score(const at::Tensor& train, const at::Tensor& query, int64_t topk) {
  const char* op = "topk_score";
  check_score_pair(train, query, op, false);
  check_positive(topk, op, "topk");
  TA_CHECK_ARG(topk <= train.size(0), op, "topk", "must be <= N, the number of train rows (",
               train.size(0), "), got ", topk);
}

// Returns the checked block boundaries (check_blocks).
inline std::vector<int64_t> check_datainf_scores(const at::Tensor& train, const at::Tensor& query,
                                                 std::optional<double> damping,
                                                 at::OptionalIntArrayRef blocks) {
  const char* op = "datainf_scores";
  check_score_pair(train, query, op, true);
  TA_CHECK_ARG(train.size(0) >= 1, op, "train", "must have N >= 1 rows, got shape ", shape_str(train));
  if (damping.has_value())
    TA_CHECK_ARG(std::isfinite(*damping) && *damping > 0, op, "damping",
                 "must be a finite number > 0 (or None for the per-block default), got ", *damping);
  return check_blocks(blocks, train.size(1), op);
}

}  // namespace trustattr
