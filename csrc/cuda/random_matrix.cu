// random_matrix on the GPU: R [D, k] materialized, one thread per entry
// (grid-stride, coalesced writes). Each entry is computed exactly as the CPU's
// fill_random_matrix does -- (+-1) * scale, float(table[q]) * scale, or the
// sjlt hit of the entry's block -- with the same sketch_rng.h functions, so the
// two are bit-identical. Recomputing the row key and word per entry costs two
// mix64 per entry, far below the cost of writing it.
#include "device_common.cuh"

namespace trustattr::cuda {
namespace {

constexpr int kThreads = 256;

template <typename T>
__global__ void __launch_bounds__(kThreads)
    random_matrix_kernel(T* __restrict__ out, int64_t d, int64_t k, uint64_t key, SketchKind kind,
                         int64_t feature_offset, int64_t nnz, T scale,
                         const float* __restrict__ table) {
  const int64_t total = d * k;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * kThreads;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x; i < total;
       i += stride) {
    const int64_t row = i / k, j = i - row * k;
    const uint64_t rk = row_key(key, feature_offset + row);
    T value;
    if (kind == SketchKind::kRademacher) {
      value = (rademacher_negative(rk, j) ? T(-1) : T(1)) * scale;
    } else if (kind == SketchKind::kGaussian) {
      value = static_cast<T>(__ldg(table + gaussian_index(rk, j))) * scale;
    } else {
      // Block t of column j: the largest t with t*k/nnz <= j.
      const int64_t t = ((j + 1) * nnz - 1) / k;
      const SjltHit hit = sjlt_hit(rk, t, nnz, k);
      value = hit.bucket == j ? (hit.negative ? T(-1) : T(1)) * scale : T(0);
    }
    out[i] = value;
  }
}

}  // namespace

cudaError_t launch_random_matrix(void* out, bool is_double, int64_t d, int64_t k, uint64_t key,
                                 SketchKind kind, int64_t feature_offset, int64_t nnz,
                                 double scale, const float* table, cudaStream_t stream) {
  int64_t blocks = ceil_div(d * k, kThreads);
  blocks = blocks < 65536 ? blocks : 65536;
  if (is_double) {
    random_matrix_kernel<double><<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(
        static_cast<double*>(out), d, k, key, kind, feature_offset, nnz, scale, table);
  } else {
    random_matrix_kernel<float><<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(
        static_cast<float*>(out), d, k, key, kind, feature_offset, nnz, static_cast<float>(scale),
        table);
  }
  return cudaGetLastError();
}

}  // namespace trustattr::cuda
