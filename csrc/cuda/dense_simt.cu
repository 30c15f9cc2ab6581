// Dense sketches on the FMA units: the gaussian kind (fp32 accumulation for
// fp32/bf16/fp16 inputs), every float64 input (fp64 accumulation, either dense
// kind), and rademacher on GPUs without bf16 tensor cores (compute capability
// < 8.0).
//
// Same GEMM as dense_mma.cu (C = A * B with B generated, forward or
// transposed), as a classic shared-memory SIMT tile: a block of 256 threads owns
// BM x 64 outputs (BM = 64, or 16 for batches of at most 16 rows), each thread
// BM/16 x 4 of them (rows ty + 16 i, columns tx + 16 j so that shared-memory
// reads are conflict-free and global writes coalesce). Per chunk of 16
// reduction elements: A is staged (converted to the accumulation type), the
// sketch_rng.h words are computed once per (feature, word) into shared memory,
// expanded to entries (+-1, or the gaussian table value read through the
// read-only cache), and multiplied with FMAs.
//
// Why not tensor cores for gaussian: the table values are float32 and not
// exact in bf16/fp16, so a bit-identical matrix would need a 3-way split; fp32
// FMAs keep it simple. Accuracy: fp32 (or fp64) FMA accumulation, the same
// order of error as the CPU kernels (~1e-7 relative in fp32, ~1e-15 in fp64).
#include "device_common.cuh"

namespace trustattr::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kBN = 64;  // output columns per block
constexpr int kBK = 16;  // reduction elements per chunk

template <typename Acc>
struct SimtParams : DenseGemm<Acc> {  // slice_len: a multiple of kBK
  SketchKind kind;
  const float* table;
};

template <typename Acc, Elem E, int BM, bool kTransposed>
__global__ void __launch_bounds__(kThreads) dense_simt_kernel(const SimtParams<Acc> p) {
  constexpr int kTM = BM / 16;  // rows per thread
  __shared__ Acc a_tile[kBK][BM + 1];
  __shared__ Acc b_tile[kBK][kBN + 1];
  __shared__ uint64_t words[256];
  __shared__ uint64_t rkeys[kBN];

  const int tid = threadIdx.x, tx = tid & 15, ty = tid >> 4;
  const int64_t col0 = static_cast<int64_t>(blockIdx.x) * kBN;
  const int64_t row0 = p.row_offset + static_cast<int64_t>(blockIdx.y) * BM;
  const int64_t slice = blockIdx.z;
  const int64_t r_begin = slice * p.slice_len;
  const int64_t r_end = r_begin + p.slice_len < p.red ? r_begin + p.slice_len : p.red;
  const bool gaussian = p.kind == SketchKind::kGaussian;
  const int shift = gaussian ? 2 : 6;  // log2(columns per word)

  if constexpr (kTransposed) {
    for (int c = tid; c < kBN; c += kThreads) rkeys[c] = row_key(p.key, p.feature_offset + col0 + c);
  }

  Acc acc[kTM][4];
#pragma unroll
  for (int i = 0; i < kTM; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j) acc[i][j] = Acc(0);

  for (int64_t c0 = r_begin; c0 < r_end; c0 += kBK) {
    __syncthreads();  // the previous chunk is consumed
    for (int e = tid; e < BM * kBK; e += kThreads) {
      const int r = e / kBK, q = e % kBK;
      const int64_t row = row0 + r, c = c0 + q;
      a_tile[q][r] = (row < p.m && c < r_end)
                         ? load_elem<E, Acc>(p.a, row * p.a_stride_row + c * p.a_stride_col)
                         : Acc(0);
    }
    if constexpr (!kTransposed) {  // words of features c0 .. c0 + 15, columns col0 .. col0 + 63
      const int per_row = gaussian ? kBN / 4 : 1;
      for (int w = tid; w < kBK * per_row; w += kThreads) {
        const uint64_t rk = row_key(p.key, p.feature_offset + c0 + w / per_row);
        words[w] = word_of(rk, (col0 >> shift) + w % per_row);
      }
    } else {  // words of features col0 .. col0 + 63, columns c0 .. c0 + 15
      const int per_col = gaussian ? kBK / 4 : 1;
      for (int w = tid; w < kBN * per_col; w += kThreads)
        words[w] = word_of(rkeys[w / per_col], (c0 >> shift) + w % per_col);
    }
    __syncthreads();
    for (int e = tid; e < kBK * kBN; e += kThreads) {
      const int pp = e / kBN, c = e % kBN;
      uint64_t bits;
      if constexpr (!kTransposed)
        bits = gaussian ? words[pp * (kBN / 4) + (c >> 2)] >> (16 * (c & 3)) : words[pp] >> c;
      else
        bits = gaussian ? words[c * (kBK / 4) + (pp >> 2)] >> (16 * (pp & 3))
                        : words[c] >> ((c0 & 63) + pp);
      b_tile[pp][c] = gaussian ? static_cast<Acc>(__ldg(p.table + (bits & 0xFFFFu)))
                               : ((bits & 1u) ? Acc(-1) : Acc(1));
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < kBK; ++kk) {
      Acc a[kTM], b[4];
#pragma unroll
      for (int i = 0; i < kTM; ++i) a[i] = a_tile[kk][ty + 16 * i];
#pragma unroll
      for (int j = 0; j < 4; ++j) b[j] = b_tile[kk][tx + 16 * j];
#pragma unroll
      for (int i = 0; i < kTM; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] += a[i] * b[j];
    }
  }

#pragma unroll
  for (int i = 0; i < kTM; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int64_t r = row0 + ty + 16 * i, c = col0 + tx + 16 * j;
      if (r < p.m && c < p.cols) {
        if (p.partial != nullptr)
          p.partial[(slice * p.m + r) * p.cols + c] = acc[i][j];
        else
          p.out[r * p.cols + c] = acc[i][j] * p.scale;
      }
    }
}

template <typename Acc, Elem E, int BM, bool kTransposed>
cudaError_t launch_typed(const SimtParams<Acc>& base, int64_t slices, cudaStream_t stream) {
  const int64_t col_tiles = ceil_div(base.cols, kBN);
  return launch_row_groups(base.m, BM, [&](int64_t r0, int64_t row_blocks) {
    SimtParams<Acc> p = base;
    p.row_offset = r0;
    const dim3 grid(static_cast<unsigned>(col_tiles), static_cast<unsigned>(row_blocks),
                    static_cast<unsigned>(slices));
    dense_simt_kernel<Acc, E, BM, kTransposed><<<grid, kThreads, 0, stream>>>(p);
  });
}

template <typename Acc, Elem E>
cudaError_t launch_shape(int bm, bool transposed, const SimtParams<Acc>& p, int64_t slices,
                         cudaStream_t stream) {
  if (bm == 16) {
    return transposed ? launch_typed<Acc, E, 16, true>(p, slices, stream)
                      : launch_typed<Acc, E, 16, false>(p, slices, stream);
  }
  return transposed ? launch_typed<Acc, E, 64, true>(p, slices, stream)
                    : launch_typed<Acc, E, 64, false>(p, slices, stream);
}

template <typename Acc>
SimtParams<Acc> make_params(const SketchParams& sp, const Plan& plan, void* partial) {
  SimtParams<Acc> p{dense_gemm<Acc>(sp, plan, partial)};
  p.kind = sp.kind;
  p.table = sp.table;
  return p;
}

}  // namespace

Plan plan_dense_simt(const SketchParams& p) {
  return plan_dense(p, Engine::kDenseSimt, p.n <= 16 ? 16 : 64, kBN, kBK, /*min_chunks=*/16);
}

cudaError_t launch_dense_simt(const SketchParams& sp, const Plan& plan, void* partial,
                              cudaStream_t stream) {
  const int bm = plan.tile_rows;
  const bool t = sp.transposed;
  switch (sp.elem) {
    case Elem::kF64:
      return launch_shape<double, Elem::kF64>(bm, t, make_params<double>(sp, plan, partial),
                                              plan.slices, stream);
    case Elem::kF32:
      return launch_shape<float, Elem::kF32>(bm, t, make_params<float>(sp, plan, partial),
                                             plan.slices, stream);
    case Elem::kBF16:
      return launch_shape<float, Elem::kBF16>(bm, t, make_params<float>(sp, plan, partial),
                                              plan.slices, stream);
    default:
      return launch_shape<float, Elem::kF16>(bm, t, make_params<float>(sp, plan, partial),
                                             plan.slices, stream);
  }
}

}  // namespace trustattr::cuda
