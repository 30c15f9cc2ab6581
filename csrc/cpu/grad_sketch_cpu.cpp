// CPU launchers of project_factored, project_outer and segment_sum: argument
// checks, output allocation, and the hand-off to the per-ISA kernels
// (grad_sketch_impl.h documents their algorithms).
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <cmath>

#include "../checks.h"
#include "attr_cpu.h"
#include "attr_launch.h"

namespace trustattr {
namespace {

// Fills what both gradient sketches share (GradSketchArgs) for the checked
// a [N, T, d_in] and g [N, T, d_out] and returns the output [rows_out, width].
// The factors are read in place when their last dimension has unit stride;
// `keep` holds the tensors the arguments point into.
at::Tensor grad_sketch_args(const at::Tensor& a, const at::Tensor& g,
                            const std::optional<at::Tensor>& segments, int64_t rows_out,
                            int64_t width, double scale, cpu::GradSketchArgs& args,
                            at::Tensor keep[3]) {
  keep[0] = unit_last_stride(a);
  keep[1] = unit_last_stride(g);
  if (segments.has_value()) keep[2] = segments->contiguous();
  cpu::GradFactors& in = args.in;
  in.a = keep[0].data_ptr();
  in.a_stride_n = keep[0].stride(0);
  in.a_stride_t = keep[0].stride(1);
  in.g = keep[1].data_ptr();
  in.g_stride_n = keep[1].stride(0);
  in.g_stride_t = keep[1].stride(1);
  in.elem = elem_of(a.scalar_type());
  in.n = a.size(0);
  in.t = a.size(1);
  in.d_in = a.size(2);
  in.d_out = g.size(2);
  in.segments = segments.has_value() ? keep[2].data_ptr<int64_t>() : nullptr;
  in.rows_out = rows_out;
  at::Tensor out = at::empty({rows_out, width}, sketch_options(a));
  args.scale = scale;
  args.out = out.data_ptr();
  args.num_threads = at::get_num_threads();
  return out;
}

at::Tensor project_factored_cpu(const at::Tensor& a, const at::Tensor& g, int64_t k_in, int64_t k_out,
                                int64_t seed, const std::optional<at::Tensor>& segments,
                                int64_t num_segments) {
  const int64_t rows_out = check_project_factored(a, g, k_in, k_out, segments, num_segments);
  const double scale = 1.0 / std::sqrt(static_cast<double>(k_in) * static_cast<double>(k_out));
  at::Tensor keep[3];
  cpu::FactoredArgs args{};
  at::Tensor out = grad_sketch_args(a, g, segments, rows_out, k_out * k_in, scale, args, keep);
  args.k_in = k_in;
  args.k_out = k_out;
  args.seed_in = derive_seed(seed, 0);
  args.seed_out = derive_seed(seed, 1);
  cpu::project_factored_run(args);
  return out;
}

at::Tensor project_outer_cpu(const at::Tensor& a, const at::Tensor& g, int64_t k, int64_t seed,
                             int64_t feature_offset, const std::optional<at::Tensor>& segments,
                             int64_t num_segments) {
  const int64_t rows_out = check_project_outer(a, g, k, feature_offset, segments, num_segments);
  const double scale = 1.0 / std::sqrt(static_cast<double>(k));
  at::Tensor keep[3];
  cpu::OuterArgs args{};
  at::Tensor out = grad_sketch_args(a, g, segments, rows_out, k, scale, args, keep);
  args.k = k;
  args.seed = seed;
  args.feature_offset = feature_offset;
  cpu::project_outer_run(args);
  return out;
}

// out[s] = sum of the rows r with segments[r] == s, added in increasing r
// (each column is summed by one thread, so the order never depends on threads).
at::Tensor segment_sum_cpu(const at::Tensor& x, const at::Tensor& segments, int64_t num_segments) {
  check_segment_sum(x, segments, num_segments);
  const at::Tensor xc = x.contiguous(), ids = segments.contiguous();
  const int64_t rows = x.size(0), k = x.size(1);
  at::Tensor out = at::zeros({num_segments, k}, sketch_options(x));
  const int64_t* id = ids.data_ptr<int64_t>();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, x.scalar_type(), "segment_sum", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const scalar_t* src = xc.data_ptr<scalar_t>();
    acc_t* dst = out.data_ptr<acc_t>();
    at::parallel_for(0, k, 512, [&](int64_t c0, int64_t c1) {
      for (int64_t r = 0; r < rows; ++r) {
        const scalar_t* row = src + r * k;
        acc_t* o = dst + id[r] * k;
        for (int64_t c = c0; c < c1; ++c) o[c] += static_cast<acc_t>(row[c]);
      }
    });
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(trustattr, CPU, m) {
  m.impl("project_factored", &project_factored_cpu);
  m.impl("project_outer", &project_outer_cpu);
  m.impl("segment_sum", &segment_sum_cpu);
}

}  // namespace trustattr
