// CUDA launchers of project_factored, project_outer and segment_sum, and their
// registration. Same checks and messages as the CPU launchers (plus a device
// check of the segment ids, which costs one synchronization).
//
// project_factored: P_a = a @ R_in / sqrt(k_in) and P_g = g @ R_out / sqrt(k_out)
//   are the `project` op itself (the rademacher kernels of issue 2: tensor cores
//   for bf16/fp16 and fp32 -- split bf16 hi + lo -- fp64 FMAs for float64) on the
//   token rows [N*T, d], with seeds derive_seed(seed, 0) and derive_seed(seed, 1)
//   (R_in = random_matrix(d_in, k_in, derive_seed(seed, 0)), bit-identical to the
//   CPU's); then out[s] = sum_{n in s} sum_t P_g[n,t]^T P_a[n,t] (token_outer,
//   grad_sketch.cu). Extra memory: N*T*(k_in + k_out) values.
// project_outer: for each block of Bo rows o of G (Bo*d_in*S <= 2^25 values),
//   the tile G[s, o0:o0+Bo, :] = sum_{n in s} sum_t g[n,t,o0:o0+Bo] a[n,t,:]^T
//   (token_outer, accumulation type), then project(tile, k, seed,
//   feature_offset + o0*d_in) added to the output in block order -- never all of G.
// segment_sum: members sorted once (stable sort of the ids, searchsorted for
//   the boundaries), then one thread per (segment, column) adds its rows in order.
//
// Results are deterministic (no atomics; fixed launch plans), agree with the
// CPU kernels to rounding, but -- unlike the CPU -- a row's bits may depend on
// the batch it came in (the projection's split plan depends on the row count).
#include <ATen/ATen.h>
#include <ATen/core/LegacyTypeDispatch.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include <algorithm>

#include "../checks.h"
#include "../sketch_rng.h"  // derive_seed
#include "attr_launch_cuda.h"

namespace trustattr {
namespace {

constexpr int64_t kMaxOuterColumns = 65535 * 64;     // token_outer's grid limit per factor
constexpr int64_t kMaxSegmentColumns = 65535 * 256;  // segment_sum's grid limit
constexpr int64_t kOuterTileValues = int64_t(1) << 25;  // project_outer's G tile

// Raises the CPU's error for the first segment id outside [0, num_segments).
void check_segment_values(const at::Tensor& segments, int64_t num_segments, const char* op) {
  if (segments.numel() == 0) return;
  const at::Tensor bad = at::logical_or(segments.lt(0), segments.ge(num_segments));
  if (!bad.any().item<bool>()) return;
  const int64_t row = bad.nonzero().select(1, 0)[0].item<int64_t>();
  TA_CHECK_ARG(false, op, "segments", "values must lie in [0, num_segments) = [0, ", num_segments,
               "), got ", segments[row].item<int64_t>(), " at row ", row);
}

// After the CPU launcher's checks: the device, and the segment ids on the device.
void check_factors_cuda(const at::Tensor& a, const std::optional<at::Tensor>& segments,
                        int64_t num_segments, const char* op) {
  check_cuda(a, op, "a");
  if (segments.has_value()) check_segment_values(*segments, num_segments, op);
}

// Members of every output row (attr_cuda.h), rows ascending within a segment.
struct DeviceMembers {
  at::Tensor start, order;  // [num_segments + 1], [rows] int64, or undefined (identity)
  cuda::Members view() const {
    if (!start.defined()) return cuda::Members{nullptr, nullptr};
    return cuda::Members{start.data_ptr<int64_t>(), order.data_ptr<int64_t>()};
  }
};

DeviceMembers device_members(const std::optional<at::Tensor>& segments, int64_t num_segments) {
  if (!segments.has_value()) return {};
  const auto sorted = at::sort(*segments, /*stable=*/true, /*dim=*/0, /*descending=*/false);
  const at::Tensor ids = std::get<0>(sorted).contiguous();
  const at::Tensor bounds = at::arange(num_segments + 1, segments->options());
  return {at::searchsorted(ids, bounds).contiguous(), std::get<1>(sorted).contiguous()};
}

// x [N, T, d] as token rows [N*T, d] (a view when the strides allow, else a
// contiguous copy): token (n, t) is row n * per_n + t * per_t.
struct TokenRows {
  at::Tensor rows;
  int64_t per_n, per_t;
};

TokenRows token_rows(const at::Tensor& x) {
  const int64_t n = x.size(0), t = x.size(1), d = x.size(2);
  const int64_t sn = x.stride(0), st = x.stride(1), sd = x.stride(2);
  if (t == 1) return {x.as_strided({n, d}, {sn, sd}), 1, 0};
  if (n == 1) return {x.as_strided({t, d}, {st, sd}), 0, 1};
  if (sn == t * st) return {x.as_strided({n * t, d}, {st, sd}), t, 1};  // sample-major
  if (st == n * sn) return {x.as_strided({n * t, d}, {sn, sd}), 1, n};  // token-major
  return {x.contiguous().view({n * t, d}), t, 1};
}

// The `project` op (rademacher, nnz 1) on CUDA rows, through the dispatcher.
at::Tensor project_rows(const at::Tensor& x, int64_t k, int64_t seed, int64_t feature_offset) {
  static const auto op =
      c10::Dispatcher::singleton()
          .findSchemaOrThrow("trustattr::project", "")
          .typed<at::Tensor(const at::Tensor&, int64_t, int64_t, c10::string_view, int64_t, int64_t)>();
  const at::AutoDispatchBelowADInplaceOrView below_autograd;
  return op.call(x, k, seed, "rademacher", feature_offset, 1);
}

at::Tensor project_factored_cuda(const at::Tensor& a, const at::Tensor& g, int64_t k_in, int64_t k_out,
                                 int64_t seed, const std::optional<at::Tensor>& segments,
                                 int64_t num_segments) {
  const char* op = "project_factored";
  const int64_t rows_out = check_project_factored(a, g, k_in, k_out, segments, num_segments);
  check_factors_cuda(a, segments, num_segments, op);
  TA_CHECK_ARG(k_in <= kMaxOuterColumns, op, "k_in", "must be <= ", kMaxOuterColumns, " on CUDA, got ", k_in);
  TA_CHECK_ARG(k_out <= kMaxOuterColumns, op, "k_out", "must be <= ", kMaxOuterColumns, " on CUDA, got ", k_out);
  const c10::cuda::CUDAGuard guard(a.device());
  const at::TensorOptions options = sketch_options(a);
  const int64_t n = a.size(0), t = a.size(1);
  if (n == 0 || t == 0) return at::zeros({rows_out, k_out * k_in}, options);

  const TokenRows ra = token_rows(a), rg = token_rows(g);
  const at::Tensor pa = project_rows(ra.rows, k_in, derive_seed(seed, 0), 0);   // [N*T, k_in]
  const at::Tensor pg = project_rows(rg.rows, k_out, derive_seed(seed, 1), 0);  // [N*T, k_out]
  at::Tensor out = at::empty({rows_out, k_out * k_in}, options);
  const DeviceMembers members = device_members(segments, num_segments);

  cuda::TokenOuterParams p{};
  p.x = cuda::TokensView{pg.data_ptr(), rg.per_n * k_out, rg.per_t * k_out, 1};  // P_g [N, T, k_out]
  p.y = cuda::TokensView{pa.data_ptr(), ra.per_n * k_in, ra.per_t * k_in, 1};    // P_a [N, T, k_in]
  p.elem = elem_of(options.dtype().toScalarType());
  p.t = t;
  p.p_count = k_out;
  p.q_count = k_in;
  p.members = members.view();
  p.rows_out = rows_out;
  p.out = out.data_ptr();
  p.ldo = k_out * k_in;
  p.scale = 1.0;  // P_a and P_g carry 1/sqrt(k_in) and 1/sqrt(k_out)
  C10_CUDA_CHECK(cuda::launch_token_outer(p, current_stream()));
  return out;
}

// Rows o of G per tile: as many as keep the tile under kOuterTileValues, whole
// 64-row blocks when more than 64 (a function of the shapes only).
int64_t outer_block_rows(int64_t rows_out, int64_t d_in, int64_t d_out) {
  int64_t rows = kOuterTileValues / std::max<int64_t>(1, rows_out * d_in);
  rows = std::min({std::max<int64_t>(rows, 1), d_out, kMaxOuterColumns});
  return rows > 64 && rows < d_out ? rows / 64 * 64 : rows;
}

at::Tensor project_outer_cuda(const at::Tensor& a, const at::Tensor& g, int64_t k, int64_t seed,
                              int64_t feature_offset, const std::optional<at::Tensor>& segments,
                              int64_t num_segments) {
  const char* op = "project_outer";
  const int64_t rows_out = check_project_outer(a, g, k, feature_offset, segments, num_segments);
  check_factors_cuda(a, segments, num_segments, op);
  const int64_t d_in = a.size(2), d_out = g.size(2);
  TA_CHECK_ARG(d_in <= kMaxOuterColumns, op, "a", "must have d_in <= ", kMaxOuterColumns,
               " features on CUDA, got shape ", shape_str(a));
  const c10::cuda::CUDAGuard guard(a.device());
  const at::TensorOptions options = sketch_options(a);
  at::Tensor out = at::zeros({rows_out, k}, options);
  if (a.size(0) == 0 || a.size(1) == 0) return out;

  const DeviceMembers members = device_members(segments, num_segments);
  const int64_t block = outer_block_rows(rows_out, d_in, d_out);
  at::Tensor tile = at::empty({rows_out, block * d_in}, options);  // G rows o0 .. o0 + block
  cuda::TokenOuterParams p{};
  p.x = tokens_view(g);  // its data moves to column o0 below
  p.y = tokens_view(a);
  p.elem = elem_of(a.scalar_type());
  p.t = a.size(1);
  p.q_count = d_in;
  p.members = members.view();
  p.rows_out = rows_out;
  p.out = tile.data_ptr();
  p.ldo = block * d_in;
  p.scale = 1.0;
  for (int64_t o0 = 0; o0 < d_out; o0 += block) {
    const int64_t rows = std::min(block, d_out - o0);
    p.x.data = static_cast<const char*>(g.data_ptr()) + o0 * g.stride(2) * g.element_size();
    p.p_count = rows;
    C10_CUDA_CHECK(cuda::launch_token_outer(p, current_stream()));
    out.add_(project_rows(tile.narrow(1, 0, rows * d_in), k, seed, feature_offset + o0 * d_in));
  }
  return out;
}

at::Tensor segment_sum_cuda(const at::Tensor& x, const at::Tensor& segments, int64_t num_segments) {
  const char* op = "segment_sum";
  check_segment_sum(x, segments, num_segments);
  check_cuda(x, op, "x");
  check_segment_values(segments, num_segments, op);
  const c10::cuda::CUDAGuard guard(x.device());
  const at::TensorOptions options = sketch_options(x);
  if (x.size(0) == 0) return at::zeros({num_segments, x.size(1)}, options);
  TA_CHECK_ARG(x.size(1) <= kMaxSegmentColumns, op, "x", "must have at most ", kMaxSegmentColumns,
               " columns on CUDA, got shape ", shape_str(x));

  at::Tensor out = at::empty({num_segments, x.size(1)}, options);
  const DeviceMembers members = device_members(segments, num_segments);
  cuda::SegmentSumParams p{};
  p.x = matrix_view(x);
  p.k = x.size(1);
  p.members = members.view();
  p.rows_out = num_segments;
  p.out = out.data_ptr();
  C10_CUDA_CHECK(cuda::launch_segment_sum(p, current_stream()));
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(trustattr, CUDA, m) {
  m.impl("project_factored", &project_factored_cuda);
  m.impl("project_outer", &project_outer_cuda);
  m.impl("segment_sum", &segment_sum_cuda);
}

}  // namespace trustattr
