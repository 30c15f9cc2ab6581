// Dot products of train rows with query rows (score, topk_score, and the last
// pass of datainf_scores), on the FMA units.
//
// A block of 256 threads owns a tile of train rows x BQ queries: BQ = 32 (64
// rows, 8 per thread) or, for at most 8 queries, BQ = 8 (128 rows, 4 per
// thread). Lane ql of a row group handles query ql, so a warp reads one
// query value per lane and broadcasts the row values. Per chunk of 32 columns
// the train rows (any dtype, any strides, read in place and converted to the
// compute type) and the queries are staged in shared memory.
//
// Summation order (the same for every tile variant, batch size, row offset and
// op, so score, topk_score and datainf agree bit for bit on the GPU): for each
// 32-column chunk from column 0, a fused multiply-add chain over its columns
// starting from 0; the chunk sums are added in order. Row and query norms
// (normalize=True) use the same sequence on <x, x>; the cosine
// dot / (sqrt(<x,x>) sqrt(<q,q>)) is evaluated in double, 0 when either norm is 0.
// The CPU kernels sum in another (SIMD-lane) order: the two devices agree to
// rounding, not bit for bit.
#include "attr_device.cuh"

namespace trustattr::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kChunk = 32;       // columns per staged chunk = the unit of the dot sequence
constexpr int kLd = kChunk + 1;  // padded shared-memory rows: conflict-free column walks

template <int BQ, int RPT>
struct ScoreTile {
  static constexpr int kGroups = kThreads / BQ;  // row groups (one per BQ lanes)
  static constexpr int kRows = RPT * kGroups;    // train rows per block
  static_assert(kThreads % BQ == 0, "query lanes");
  static_assert(kRows + BQ <= kThreads, "one norm per thread");
};

template <typename Acc>
__device__ __forceinline__ Acc cosine(Acc dot, Acc xx, Acc qq) {
  if (xx == Acc(0) || qq == Acc(0)) return Acc(0);
  const double denom = sqrt(static_cast<double>(xx)) * sqrt(static_cast<double>(qq));
  return static_cast<Acc>(static_cast<double>(dot) / denom);
}

template <Elem E, typename Acc, int BQ, int RPT>
__global__ void __launch_bounds__(kThreads) score_kernel(const ScoreParams p) {
  using S = ScoreTile<BQ, RPT>;
  __shared__ Acc tile[S::kRows + BQ][kLd];  // the chunk of the train rows, then of the queries
  __shared__ Acc norms[S::kRows + BQ];
  Acc(*xs)[kLd] = tile;
  Acc(*qs)[kLd] = tile + S::kRows;

  const int tid = threadIdx.x, ql = tid % BQ, rg = tid / BQ;
  const int64_t r0 = static_cast<int64_t>(blockIdx.x) * S::kRows;  // local row of the tile
  const int64_t q0 = static_cast<int64_t>(blockIdx.y) * BQ;
  const Acc* query = static_cast<const Acc*>(p.query);
  const bool norm_thread = p.normalize && tid < S::kRows + BQ;

  Acc total[RPT];
#pragma unroll
  for (int i = 0; i < RPT; ++i) total[i] = Acc(0);
  Acc norm_total = Acc(0);

  for (int64_t c0 = 0; c0 < p.k; c0 += kChunk) {
    __syncthreads();  // the previous chunk's reads are done
    for (int e = tid; e < S::kRows * kChunk; e += kThreads) {
      const int r = e / kChunk, c = e % kChunk;
      const int64_t row = r0 + r, col = c0 + c;
      xs[r][c] = row < p.n && col < p.k
                     ? load_elem<E, Acc>(p.train.data, (p.row_begin + row) * p.train.stride_row + col * p.train.stride_col)
                     : Acc(0);
    }
    for (int e = tid; e < BQ * kChunk; e += kThreads) {
      const int q = e / kChunk, c = e % kChunk;
      const int64_t qi = q0 + q, col = c0 + c;
      qs[q][c] = qi < p.m && col < p.k ? query[qi * p.k + col] : Acc(0);
    }
    __syncthreads();
    Acc part[RPT];
#pragma unroll
    for (int i = 0; i < RPT; ++i) part[i] = Acc(0);
#pragma unroll 8
    for (int j = 0; j < kChunk; ++j) {
      const Acc qv = qs[ql][j];
#pragma unroll
      for (int i = 0; i < RPT; ++i) part[i] = fma_acc(xs[rg * RPT + i][j], qv, part[i]);
    }
#pragma unroll
    for (int i = 0; i < RPT; ++i) total[i] += part[i];
    if (norm_thread) {  // thread tid: row tid, or query tid - kRows
      Acc part_norm = Acc(0);
#pragma unroll 8
      for (int j = 0; j < kChunk; ++j) part_norm = fma_acc(tile[tid][j], tile[tid][j], part_norm);
      norm_total += part_norm;
    }
  }
  if (p.normalize) {
    if (norm_thread) norms[tid] = norm_total;
    __syncthreads();
  }

  const int64_t q = q0 + ql;
  if (q >= p.m) return;
  Acc* out = static_cast<Acc*>(p.out);
#pragma unroll
  for (int i = 0; i < RPT; ++i) {
    const int local = rg * RPT + i;
    const int64_t row = r0 + local;
    if (row >= p.n) break;
    Acc value = total[i];
    if (p.normalize) value = cosine(value, norms[local], norms[S::kRows + ql]);
    if (p.negate) value = -value;
    out[row * p.out_stride_row + q * p.out_stride_query] = value;
  }
}

template <Elem E, typename Acc, int BQ, int RPT>
cudaError_t launch_tile(const ScoreParams& base, cudaStream_t stream) {
  using S = ScoreTile<BQ, RPT>;
  const int64_t row_tiles = ceil_div(base.n, S::kRows);
  if (row_tiles > kMaxGridX) return cudaErrorInvalidValue;
  const int64_t most = kMaxGridY * BQ;  // queries per launch
  for (int64_t first = 0; first < base.m; first += most) {
    ScoreParams p = base;
    p.m = base.m - first < most ? base.m - first : most;
    p.query = static_cast<const Acc*>(base.query) + first * base.k;
    p.out = static_cast<Acc*>(base.out) + first * base.out_stride_query;
    const dim3 grid(static_cast<unsigned>(row_tiles), static_cast<unsigned>(ceil_div(p.m, BQ)));
    score_kernel<E, Acc, BQ, RPT><<<grid, kThreads, 0, stream>>>(p);
    const cudaError_t err = cudaGetLastError();
    if (err != cudaSuccess) return err;
  }
  return cudaSuccess;
}

template <Elem E>
struct ScoreLaunch {
  template <typename Acc>
  static cudaError_t typed(const ScoreParams& p, cudaStream_t stream) {
    if (p.m <= 8) return launch_tile<E, Acc, 8, 4>(p, stream);
    return launch_tile<E, Acc, 32, 8>(p, stream);
  }
  static cudaError_t run(const ScoreParams& p, cudaStream_t stream) {
    return p.f64 ? typed<double>(p, stream) : typed<float>(p, stream);
  }
};

}  // namespace

cudaError_t launch_score(const ScoreParams& p, cudaStream_t stream) {
  if (p.n == 0 || p.m == 0) return cudaSuccess;
  if (p.k < 1) return cudaErrorInvalidValue;
  return dispatch_elem<ScoreLaunch>(p.train.elem, p, stream);
}

}  // namespace trustattr::cuda
