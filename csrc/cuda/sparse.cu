// SJLT sketches: every feature d has nnz hits (bucket, sign) from sketch_rng.h,
// one in each block [t k / nnz, (t + 1) k / nnz) of the output columns. No
// global atomics anywhere.
//
// Forward (project, memory-bound: each x element is read once):
//   a block owns `rows` rows of x (<= 16), a range of output columns (all k
//   when rows x k fits the shared-memory budget) and one slice of the features.
//   Its accumulator acc[rows][col_tile] lives in shared memory. Each thread
//   takes features f, f + 256, ... (coalesced loads, U features in flight per
//   thread), hashes a feature once for all the block's rows, and adds +-x into
//   acc with shared-memory atomics. The block then writes its unscaled slice
//   partial (or the scaled result when there is one slice), and
//   launch_reduce_slices sums the slices in slice order.
//   Accuracy: fp32 (fp64 for float64 input) additions, ~1e-7 relative. The
//   order of the shared-memory atomic adds is not fixed, so sjlt forward
//   results on CUDA can differ run to run at the rounding level (dense kinds
//   and project_t are deterministic).
// Transposed (project_t): a pure gather, one thread per feature and 16 rows:
//   out[n, d] = scale * sum_t sign_t(d) * y[n, bucket_t(d)], hits in t order,
//   exactly as the CPU kernel sums them.
#include "device_common.cuh"

namespace trustattr::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kMaxRows = 16;                      // rows per block (register arrays)
constexpr int64_t kAccBudget = 96 * 1024;         // shared accumulator bytes per block
constexpr int64_t kStartsBytes = 16 * ((8 * (kMaxCachedStarts + 1) + 15) / 16);
constexpr int64_t kSparseTargetBlocks = 2 * kTargetBlocks;
constexpr int64_t kFeatureChunk = 256;            // slice lengths are multiples of this

// A: forward x [n, d]; transposed y [n, k]. partial: forward only, [slices, n, k].
template <typename Acc>
struct SparseParams : KernelParams<Acc> {
  int64_t n, d, k, nnz;
  int rows_per_block;
  int64_t col_tile;
};

// Adds the hits of feature f (row values v) into the shared accumulator.
template <typename Acc, int RMAX>
__device__ __forceinline__ void scatter_feature(const SparseParams<Acc>& p, const int64_t* starts,
                                                int64_t f, const Acc (&v)[RMAX], int rows,
                                                int64_t col0, int64_t cols, Acc* acc) {
  const uint64_t rk = row_key(p.key, p.feature_offset + f);
  for (int64_t t = 0; t < p.nnz; ++t) {
    const SjltHit h = sjlt_hit_cached(starts, rk, t, p.nnz, p.k);
    const int64_t b = h.bucket - col0;
    if (b < 0 || b >= cols) continue;
    Acc* dst = acc + b;
#pragma unroll
    for (int r = 0; r < RMAX; ++r)
      if (r < rows) atomicAdd(dst + r * p.col_tile, h.negative ? -v[r] : v[r]);
  }
}

template <typename Acc, Elem E, int RMAX>
__global__ void __launch_bounds__(kThreads, 2) sjlt_forward_kernel(const SparseParams<Acc> p) {
  constexpr int U = RMAX >= 16 ? 2 : (RMAX >= 8 ? 4 : 8);  // features in flight per thread
  extern __shared__ __align__(16) unsigned char smem[];
  int64_t* starts = reinterpret_cast<int64_t*>(smem);
  Acc* acc = reinterpret_cast<Acc*>(smem + kStartsBytes);  // [rows_per_block][col_tile]

  const int tid = threadIdx.x;
  const int64_t slice = blockIdx.x;
  const int64_t f_begin = slice * p.slice_len;
  const int64_t f_end = f_begin + p.slice_len < p.d ? f_begin + p.slice_len : p.d;
  const int64_t row0 = p.row_offset + static_cast<int64_t>(blockIdx.y) * p.rows_per_block;
  const int rows = static_cast<int>(p.n - row0 < p.rows_per_block ? p.n - row0 : p.rows_per_block);
  const int64_t col0 = static_cast<int64_t>(blockIdx.z) * p.col_tile;
  const int64_t cols = p.k - col0 < p.col_tile ? p.k - col0 : p.col_tile;

  fill_sjlt_starts(starts, p.nnz, p.k);
  for (int64_t i = tid; i < static_cast<int64_t>(p.rows_per_block) * p.col_tile; i += kThreads)
    acc[i] = Acc(0);
  __syncthreads();

  for (int64_t f0 = f_begin + tid; f0 < f_end; f0 += static_cast<int64_t>(kThreads) * U) {
    Acc v[U][RMAX];
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int64_t f = f0 + static_cast<int64_t>(u) * kThreads;
#pragma unroll
      for (int r = 0; r < RMAX; ++r)
        v[u][r] = (f < f_end && r < rows)
                      ? load_elem<E, Acc>(p.a, (row0 + r) * p.a_stride_row + f * p.a_stride_col)
                      : Acc(0);
    }
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int64_t f = f0 + static_cast<int64_t>(u) * kThreads;
      if (f < f_end) scatter_feature<Acc, RMAX>(p, starts, f, v[u], rows, col0, cols, acc);
    }
  }
  __syncthreads();

  for (int64_t i = tid; i < rows * cols; i += kThreads) {
    const int64_t r = i / cols, c = i - r * cols;
    const Acc value = acc[r * p.col_tile + c];
    if (p.partial != nullptr)
      p.partial[(slice * p.n + row0 + r) * p.k + col0 + c] = value;
    else
      p.out[(row0 + r) * p.k + col0 + c] = value * p.scale;
  }
}

constexpr int kGatherRows = 16;

template <typename Acc, Elem E>
__global__ void __launch_bounds__(kThreads) sjlt_transposed_kernel(const SparseParams<Acc> p) {
  __shared__ int64_t starts[kMaxCachedStarts + 1];
  fill_sjlt_starts(starts, p.nnz, p.k);
  __syncthreads();
  const int64_t f = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  if (f >= p.d) return;
  const int64_t row0 = p.row_offset + static_cast<int64_t>(blockIdx.y) * kGatherRows;
  const int rows = static_cast<int>(p.n - row0 < kGatherRows ? p.n - row0 : kGatherRows);
  Acc acc[kGatherRows];
#pragma unroll
  for (int r = 0; r < kGatherRows; ++r) acc[r] = Acc(0);
  const uint64_t rk = row_key(p.key, p.feature_offset + f);
  for (int64_t t = 0; t < p.nnz; ++t) {
    const SjltHit h = sjlt_hit_cached(starts, rk, t, p.nnz, p.k);
#pragma unroll
    for (int r = 0; r < kGatherRows; ++r) {
      if (r < rows) {
        const Acc v = load_elem<E, Acc>(p.a, (row0 + r) * p.a_stride_row + h.bucket * p.a_stride_col);
        acc[r] += h.negative ? -v : v;
      }
    }
  }
#pragma unroll
  for (int r = 0; r < kGatherRows; ++r)
    if (r < rows) p.out[(row0 + r) * p.d + f] = acc[r] * p.scale;
}

template <typename Acc, Elem E, int RMAX>
cudaError_t launch_forward(const SparseParams<Acc>& base, const Plan& plan, cudaStream_t stream) {
  auto* kernel = sjlt_forward_kernel<Acc, E, RMAX>;
  if (plan.smem_bytes > 48 * 1024) {
    const cudaError_t err = cudaFuncSetAttribute(
        kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(plan.smem_bytes));
    if (err != cudaSuccess) return err;
  }
  return launch_row_groups(base.n, base.rows_per_block, [&](int64_t r0, int64_t row_blocks) {
    SparseParams<Acc> p = base;
    p.row_offset = r0;
    const dim3 grid(static_cast<unsigned>(plan.slices), static_cast<unsigned>(row_blocks),
                    static_cast<unsigned>(ceil_div(base.k, base.col_tile)));
    kernel<<<grid, kThreads, plan.smem_bytes, stream>>>(p);
  });
}

template <typename Acc, Elem E>
cudaError_t launch_transposed(const SparseParams<Acc>& base, cudaStream_t stream) {
  return launch_row_groups(base.n, kGatherRows, [&](int64_t r0, int64_t row_blocks) {
    SparseParams<Acc> p = base;
    p.row_offset = r0;
    const dim3 grid(static_cast<unsigned>(ceil_div(base.d, kThreads)), static_cast<unsigned>(row_blocks));
    sjlt_transposed_kernel<Acc, E><<<grid, kThreads, 0, stream>>>(p);
  });
}

template <typename Acc, Elem E>
cudaError_t launch_elem(const SparseParams<Acc>& p, const Plan& plan, bool transposed,
                        cudaStream_t stream) {
  if (transposed) return launch_transposed<Acc, E>(p, stream);
  const int rows = p.rows_per_block;
  if (rows <= 1) return launch_forward<Acc, E, 1>(p, plan, stream);
  if (rows <= 2) return launch_forward<Acc, E, 2>(p, plan, stream);
  if (rows <= 4) return launch_forward<Acc, E, 4>(p, plan, stream);
  if (rows <= 8) return launch_forward<Acc, E, 8>(p, plan, stream);
  return launch_forward<Acc, E, kMaxRows>(p, plan, stream);
}

template <typename Acc>
SparseParams<Acc> make_params(const SketchParams& sp, const Plan& plan, void* partial) {
  SparseParams<Acc> p{kernel_params<Acc>(sp, plan, partial)};
  p.n = sp.n;
  p.d = sp.d;
  p.k = sp.k;
  p.nnz = sp.nnz;
  p.rows_per_block = plan.tile_rows;
  p.col_tile = plan.col_tile;
  return p;
}

}  // namespace

Plan plan_sparse(const SketchParams& p, const DeviceCaps& caps) {
  Plan plan{};
  plan.engine = Engine::kSparse;
  plan.slices = 1;
  if (p.transposed) {
    plan.tile_rows = kGatherRows;
    plan.slice_len = p.k;
    plan.col_tile = p.k;
    return plan;
  }
  const int64_t elem = p.elem == Elem::kF64 ? 8 : 4;
  int64_t budget = static_cast<int64_t>(caps.smem_optin_bytes) - kStartsBytes - 1024;
  budget = budget < kAccBudget ? budget : kAccBudget;
  int64_t rows = budget / (p.k * elem);
  if (rows >= 1) {
    plan.col_tile = p.k;
    rows = rows < kMaxRows ? rows : kMaxRows;
    rows = rows < p.n ? rows : p.n;
  } else {  // a single row of k columns does not fit: tile the columns
    plan.col_tile = (budget / elem) / 32 * 32;
    rows = 1;
  }
  const int64_t groups = ceil_div(p.n, rows);
  plan.tile_rows = static_cast<int>(ceil_div(p.n, groups));  // balanced row groups
  const int64_t tiles = groups * ceil_div(p.k, plan.col_tile);
  // Each slice reads at least 8x as many elements per row as it writes.
  const int64_t min_len = 8 * plan.col_tile > 4096 ? 8 * plan.col_tile : 4096;
  split_reduction(tiles, p.d, kFeatureChunk, ceil_div(min_len, kFeatureChunk), plan,
                  kSparseTargetBlocks);
  plan.smem_bytes = static_cast<size_t>(kStartsBytes + plan.tile_rows * plan.col_tile * elem);
  plan.workspace_bytes = partial_bytes(plan, p);
  return plan;
}

cudaError_t launch_sparse(const SketchParams& sp, const Plan& plan, void* partial,
                          cudaStream_t stream) {
  const bool t = sp.transposed;
  switch (sp.elem) {
    case Elem::kF64:
      return launch_elem<double, Elem::kF64>(make_params<double>(sp, plan, partial), plan, t, stream);
    case Elem::kF32:
      return launch_elem<float, Elem::kF32>(make_params<float>(sp, plan, partial), plan, t, stream);
    case Elem::kBF16:
      return launch_elem<float, Elem::kBF16>(make_params<float>(sp, plan, partial), plan, t, stream);
    default:
      return launch_elem<float, Elem::kF16>(make_params<float>(sp, plan, partial), plan, t, stream);
  }
}

}  // namespace trustattr::cuda
