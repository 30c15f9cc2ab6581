// CPU launchers of project / project_t and the CPU generator of random_matrix.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include "../checks.h"
#include "../gaussian_table.h"
#include "../sketch_ops.h"
#include "sketch_cpu.h"

namespace trustattr {
namespace {

// Shared body of project (x [N, D] -> [N, k]) and project_t (y [N, k] -> [N, D]).
at::Tensor sketch_cpu(const at::Tensor& x, int64_t d, int64_t k, int64_t seed,
                      c10::string_view kind, int64_t feature_offset, int64_t nnz, bool transposed) {
  const SketchKind sk = check_project(x, d, k, kind, feature_offset, nnz, transposed);
  const int64_t n = x.size(0);
  at::Tensor out = at::empty({n, transposed ? d : k}, sketch_options(x));
  if (n == 0) return out;
  cpu::SketchArgs args{sketch_call(x, out, d, k, seed, sk, feature_offset, nnz, transposed,
                                    gaussian_table_cpu().data_ptr<float>())};
  args.num_threads = at::get_num_threads();
  cpu::sketch_run(args);
  return out;
}

template <typename T>
void fill_random_matrix(T* out, int64_t D, int64_t k, uint64_t key, SketchKind kind,
                        int64_t feature_offset, int64_t nnz, T scale, const float* table) {
  at::parallel_for(0, D, 64, [&](int64_t begin, int64_t end) {
    for (int64_t d = begin; d < end; ++d) {
      const uint64_t rk = row_key(key, feature_offset + d);
      T* row = out + d * k;
      if (kind == SketchKind::kSjlt) {
        for (int64_t j = 0; j < k; ++j) row[j] = T(0);
        for (int64_t t = 0; t < nnz; ++t) {
          const SjltHit h = sjlt_hit(rk, t, nnz, k);
          row[h.bucket] = (h.negative ? T(-1) : T(1)) * scale;
        }
      } else if (kind == SketchKind::kRademacher) {
        for (int64_t j = 0; j < k; ++j) row[j] = (rademacher_negative(rk, j) ? T(-1) : T(1)) * scale;
      } else {
        for (int64_t j = 0; j < k; ++j) row[j] = static_cast<T>(table[gaussian_index(rk, j)]) * scale;
      }
    }
  });
}

}  // namespace

at::Tensor random_matrix_cpu(int64_t D, int64_t k, int64_t seed, SketchKind kind,
                             int64_t feature_offset, int64_t nnz, at::ScalarType dtype,
                             at::Device device) {
  (void)device;
  at::Tensor out = at::empty({D, k}, at::TensorOptions().dtype(dtype));
  const uint64_t key = seed_key(seed, kind);
  const double scale = sketch_scale(kind, k, nnz);
  const float* table = gaussian_table_cpu().data_ptr<float>();
  if (dtype == at::kDouble) {
    fill_random_matrix<double>(out.data_ptr<double>(), D, k, key, kind, feature_offset, nnz, scale,
                               table);
  } else {
    fill_random_matrix<float>(out.data_ptr<float>(), D, k, key, kind, feature_offset, nnz,
                              static_cast<float>(scale), table);
  }
  return out;
}

TORCH_LIBRARY_IMPL(trustattr, CPU, m) {
  m.impl("project", &project_op<sketch_cpu>);
  m.impl("project_t", &project_t_op<sketch_cpu>);
}

}  // namespace trustattr
