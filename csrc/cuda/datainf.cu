// DataInf (paper.md 4.1) on the GPU: the per-row block statistics and the
// fixed-order sums of datainf_scores. score_cuda.cu strings them together:
//
//   rows in chunks of C = max(4096, ceil(N / 256)) rows (a function of N only)
//   pass 0 (damping None): s_il = ||g_il||^2 per row and block (row_stats);
//          S_l per chunk, rows ascending (chunk_sums); lambda_l = 0.1 * sum of the
//          chunk sums in chunk order / (N * |block l|) (lambda)
//   pass 1: c_il = d_il / (lambda_l + s_il), d_il = <v_l, g_il> (row_stats with lambda);
//          w_l per chunk and column, rows ascending, in double (weighted_sums);
//          h_l = (N v_l - sum of the chunk partials in order) / (N lambda_l) (h)
//   pass 2: score_i = -<h, g_i> with the score kernel (score.cu)
//
// row_stats: one warp per row; lane j % 32 runs a fused multiply-add chain over
// columns lo + lane, lo + lane + 32, ... of each block, then the lanes are
// summed by a fixed halving tree. Everything else is one thread per output
// value summing in a fixed order. No atomics anywhere: results are the same on
// every run. Blocks whose lambda is 0 (all their entries 0) get c = 0 and h = 0.
#include "attr_device.cuh"

namespace trustattr::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = 1 << 20;  // grid-stride loops beyond this

// The block l of column j: the largest l with bounds[l] <= j (bounds strictly increasing).
__device__ __forceinline__ int64_t block_of(const int64_t* bounds, int64_t num_blocks, int64_t j) {
  int64_t lo = 0, hi = num_blocks - 1;
  while (lo < hi) {
    const int64_t mid = (lo + hi + 1) / 2;
    if (bounds[mid] <= j) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

template <Elem E, typename Acc>
__global__ void __launch_bounds__(kThreads)
    row_stats_kernel(const DatainfRows p, int64_t row_begin, int64_t rows, const double* lambda,
                     double* out) {
  const int lane = threadIdx.x & 31;
  const int64_t first = (static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x) >> 5;
  const int64_t step = (static_cast<int64_t>(gridDim.x) * kThreads) >> 5;
  const Acc* v = static_cast<const Acc*>(p.v);
  const bool coefficients = lambda != nullptr;
  for (int64_t r = first; r < rows; r += step) {  // uniform across the warp
    const int64_t base = (row_begin + r) * p.train.stride_row;
    for (int64_t l = 0; l < p.num_blocks; ++l) {
      const int64_t lo = p.bounds[l], hi = p.bounds[l + 1];
      Acc ss = Acc(0), dd = Acc(0);
      for (int64_t j = lo + lane; j < hi; j += 32) {
        const Acc x = load_elem<E, Acc>(p.train.data, base + j * p.train.stride_col);
        ss = fma_acc(x, x, ss);
        if (coefficients) dd = fma_acc(x, v[j], dd);
      }
      ss = warp_sum(ss);
      dd = warp_sum(dd);
      if (lane == 0) {
        double value = static_cast<double>(ss);
        if (coefficients) {
          const double lam = lambda[l];
          value = lam == 0.0 ? 0.0 : static_cast<double>(dd) / (lam + static_cast<double>(ss));
        }
        out[r * p.num_blocks + l] = value;
      }
    }
  }
}

// Rows of chunk c: [c * chunk, min(n, (c + 1) * chunk)).
__device__ __forceinline__ int64_t chunk_end(int64_t c, int64_t chunk, int64_t n) {
  return (c + 1) * chunk < n ? (c + 1) * chunk : n;
}

__global__ void __launch_bounds__(kThreads)
    chunk_sums_kernel(const double* stats, int64_t num_blocks, int64_t row_begin, int64_t n,
                      int64_t chunk, int64_t c_first, int64_t chunks, double* partial) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  if (i >= chunks * num_blocks) return;
  const int64_t c = c_first + i / num_blocks, l = i % num_blocks;
  double sum = 0.0;
  for (int64_t r = c * chunk; r < chunk_end(c, chunk, n); ++r) sum += stats[(r - row_begin) * num_blocks + l];
  partial[c * num_blocks + l] = sum;
}

__global__ void __launch_bounds__(kThreads)
    lambda_kernel(const double* partial, int64_t chunks, const int64_t* bounds, int64_t num_blocks,
                  int64_t n, double damping, double* lambda) {
  const int64_t l = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  if (l >= num_blocks) return;
  if (damping >= 0.0) {
    lambda[l] = damping;
    return;
  }
  double sum = 0.0;
  for (int64_t c = 0; c < chunks; ++c) sum += partial[c * num_blocks + l];
  const double width = static_cast<double>(bounds[l + 1] - bounds[l]);
  lambda[l] = 0.1 * sum / (static_cast<double>(n) * width);
}

template <Elem E>
__global__ void __launch_bounds__(kThreads)
    weighted_sums_kernel(const DatainfRows p, const double* coef, int64_t row_begin, int64_t n,
                         int64_t chunk, int64_t c_first, double* w) {
  const int64_t j = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  if (j >= p.k) return;
  const int64_t c = c_first + blockIdx.y;
  const int64_t l = block_of(p.bounds, p.num_blocks, j);
  double sum = 0.0;
  for (int64_t r = c * chunk; r < chunk_end(c, chunk, n); ++r) {
    const double x = load_elem<E, double>(p.train.data, r * p.train.stride_row + j * p.train.stride_col);
    sum = fma_acc(coef[(r - row_begin) * p.num_blocks + l], x, sum);
  }
  w[c * p.k + j] = sum;
}

template <typename Acc>
__global__ void __launch_bounds__(kThreads)
    h_kernel(const DatainfRows p, const double* w, int64_t chunks, int64_t n, const double* lambda,
             Acc* h) {
  const int64_t j = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  if (j >= p.k) return;
  const double lam = lambda[block_of(p.bounds, p.num_blocks, j)];
  if (lam == 0.0) {
    h[j] = Acc(0);
    return;
  }
  double sum = 0.0;
  for (int64_t c = 0; c < chunks; ++c) sum += w[c * p.k + j];
  const double v = static_cast<double>(static_cast<const Acc*>(p.v)[j]);
  h[j] = static_cast<Acc>((static_cast<double>(n) * v - sum) / (static_cast<double>(n) * lam));
}

unsigned blocks_for(int64_t threads) {
  const int64_t blocks = ceil_div(threads, kThreads);
  return static_cast<unsigned>(blocks < kMaxBlocks ? (blocks > 0 ? blocks : 1) : kMaxBlocks);
}

template <Elem E>
struct RowStatsLaunch {
  static cudaError_t run(const DatainfRows& p, int64_t row_begin, int64_t rows, const double* lambda,
                         double* out, cudaStream_t stream) {
    const unsigned grid = blocks_for(rows * 32);
    if (p.f64)
      row_stats_kernel<E, double><<<grid, kThreads, 0, stream>>>(p, row_begin, rows, lambda, out);
    else
      row_stats_kernel<E, float><<<grid, kThreads, 0, stream>>>(p, row_begin, rows, lambda, out);
    return cudaGetLastError();
  }
};

template <Elem E>
struct WeightedSumsLaunch {
  static cudaError_t run(const DatainfRows& p, const double* coef, int64_t row_begin, int64_t n,
                         int64_t chunk, int64_t c_first, int64_t chunks, double* w, cudaStream_t stream) {
    const dim3 grid(static_cast<unsigned>(ceil_div(p.k, kThreads)), static_cast<unsigned>(chunks));
    weighted_sums_kernel<E><<<grid, kThreads, 0, stream>>>(p, coef, row_begin, n, chunk, c_first, w);
    return cudaGetLastError();
  }
};

}  // namespace

cudaError_t launch_datainf_row_stats(const DatainfRows& p, int64_t row_begin, int64_t rows,
                                     const double* lambda, double* out, cudaStream_t stream) {
  if (rows == 0) return cudaSuccess;
  if (p.num_blocks < 1 || (lambda != nullptr && p.v == nullptr)) return cudaErrorInvalidValue;
  return dispatch_elem<RowStatsLaunch>(p.train.elem, p, row_begin, rows, lambda, out, stream);
}

cudaError_t launch_datainf_chunk_sums(const double* stats, int64_t num_blocks, int64_t row_begin,
                                      int64_t n, int64_t chunk, int64_t c_first, int64_t chunks,
                                      double* partial, cudaStream_t stream) {
  if (chunks == 0) return cudaSuccess;
  const int64_t blocks = ceil_div(chunks * num_blocks, kThreads);
  if (blocks > kMaxGridX) return cudaErrorInvalidValue;
  chunk_sums_kernel<<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(
      stats, num_blocks, row_begin, n, chunk, c_first, chunks, partial);
  return cudaGetLastError();
}

cudaError_t launch_datainf_lambda(const double* partial, int64_t chunks, const int64_t* bounds,
                                  int64_t num_blocks, int64_t n, double damping, double* lambda,
                                  cudaStream_t stream) {
  const int64_t blocks = ceil_div(num_blocks, kThreads);
  if (blocks < 1 || blocks > kMaxGridX) return cudaErrorInvalidValue;
  lambda_kernel<<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(partial, chunks, bounds, num_blocks,
                                                                        n, damping, lambda);
  return cudaGetLastError();
}

cudaError_t launch_datainf_weighted_sums(const DatainfRows& p, const double* coef, int64_t row_begin,
                                         int64_t n, int64_t chunk, int64_t c_first, int64_t chunks,
                                         double* w, cudaStream_t stream) {
  if (chunks == 0) return cudaSuccess;
  if (chunks > kMaxGridY || ceil_div(p.k, kThreads) > kMaxGridX) return cudaErrorInvalidValue;
  return dispatch_elem<WeightedSumsLaunch>(p.train.elem, p, coef, row_begin, n, chunk, c_first, chunks, w, stream);
}

cudaError_t launch_datainf_h(const DatainfRows& p, const double* w, int64_t chunks, int64_t n,
                             const double* lambda, void* h, cudaStream_t stream) {
  const int64_t blocks = ceil_div(p.k, kThreads);
  if (blocks < 1 || blocks > kMaxGridX) return cudaErrorInvalidValue;
  if (p.f64)
    h_kernel<double><<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(p, w, chunks, n, lambda,
                                                                            static_cast<double*>(h));
  else
    h_kernel<float><<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(p, w, chunks, n, lambda,
                                                                           static_cast<float*>(h));
  return cudaGetLastError();
}

}  // namespace trustattr::cuda
