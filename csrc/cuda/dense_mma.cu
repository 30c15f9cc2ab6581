// Rademacher sketches on tensor cores (nvcuda::wmma, bf16/fp16, sm_80+).
//
// Both directions are one GEMM C[M, cols] = A[M, red] * B[red, cols] whose B is
// generated on the fly and never stored in device memory:
//   forward    (project):   A = x [n, d],  B[p, c] = R[p, c],  C = [n, k]
//   transposed (project_t): A = y [n, k],  B[p, c] = R[c, p],  C = [n, d]
//
// A block owns BM rows x 128 columns of C (BM = 128 with 16 warps when n
// allows; 64/32/16 variants with 8 warps for small batches; every warp holds at
// most 2 x 2 fragments so nothing spills) and walks its slice of the reduction
// in chunks of BK = 64 (bf16/fp16 input) or 32 (fp32 input):
//   1. A: the chunk [BM, BK] goes global -> registers -> shared memory as
//      bf16/fp16 (16-byte loads when rows are contiguous and aligned; the next
//      chunk's loads are in flight during this chunk's MMAs). fp32 input is
//      split x = hi + lo with hi = bf16(x), lo = bf16(x - hi); both are multiplied.
//   2. B: 64-bit words of sketch_rng.h (word_of) are computed once per (feature,
//      64 columns) into shared memory, then expanded 2 signs per 32-bit store:
//      (+1 | sign bit << 15) in bf16 or fp16 -- +-1 is exact in both.
//   3. wmma m16n16k16 with fp32 accumulators. Each chunk is accumulated in a
//      fresh fragment and then added to the running sum with ordinary fp32 adds,
//      so the tensor cores' truncating accumulation never sees more than one
//      chunk (BK products) of a long reduction.
// The scale 1/sqrt(k) is applied once at the end (or by the slice reduction).
//
// Accuracy (relative to a float64 product of the same inputs): bf16 and fp16
// inputs are exact in the MMA, so only fp32 summation error remains (~1e-7).
// fp32 inputs lose the bits below hi + lo: at most 2^-16 of each element,
// typically ~5e-6 relative in the result. The random matrix is bit-identical to
// the CPU's; the summation order differs, so results agree within those bounds.
// Tile shapes and the A-chunk loader live in dense_mma_tiles.cuh.
#include <mma.h>

#include <type_traits>

#include "dense_mma_tiles.cuh"

namespace trustattr::cuda {
namespace {

template <int BM, Elem E, bool kTransposed>
__global__ void __launch_bounds__(TileShape<BM, E>::kThreads, TileShape<BM, E>::kMinBlocks)
    rademacher_mma_kernel(const MmaParams p) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  using namespace nvcuda;
  using S = TileShape<BM, E>;
  using In = MmaInput<E>;
  using T = typename In::T;
  using BLayout = typename std::conditional<kTransposed, wmma::col_major, wmma::row_major>::type;
  constexpr int kThreads = S::kThreads, kBK = S::kBK, kLdA = S::kLdA, kLdBt = S::kLdBt;
  using Frag = wmma::fragment<wmma::accumulator, 16, 16, 16, float>;

  __shared__ __align__(128) unsigned char smem[S::kSmemBytes];
  T* a_hi = reinterpret_cast<T*>(smem);
  T* a_lo = a_hi + BM * kLdA;  // fp32 input only
  T* b_tile = reinterpret_cast<T*>(smem + S::kABytes);
  uint64_t* words = reinterpret_cast<uint64_t*>(smem + S::kABytes + S::kBBytes);
  uint64_t* rkeys = words + kBN;  // transposed: row keys of the block's features

  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const int wm = warp / S::kWarpsN, wn = warp % S::kWarpsN;
  const int64_t col0 = static_cast<int64_t>(blockIdx.x) * kBN;
  const int64_t row0 = p.row_offset + static_cast<int64_t>(blockIdx.y) * BM;
  const int64_t slice = blockIdx.z;
  const int64_t r_begin = slice * p.slice_len;
  const int64_t r_end = r_begin + p.slice_len < p.red ? r_begin + p.slice_len : p.red;

  if constexpr (kTransposed) {
    if (tid < kBN) rkeys[tid] = row_key(p.key, p.feature_offset + col0 + tid);
  }

  Frag acc[S::kFM][S::kFN];
#pragma unroll
  for (int i = 0; i < S::kFM; ++i)
#pragma unroll
    for (int j = 0; j < S::kFN; ++j) wmma::fill_fragment(acc[i][j], 0.0f);

  AChunk<BM, E> chunk;
  chunk.load(p, row0, r_begin, r_end);
  for (int64_t c0 = r_begin; c0 < r_end; c0 += kBK) {
    __syncthreads();  // the previous chunk's MMAs are done with shared memory
    chunk.store(a_hi, a_lo);
    // Random words: forward, 2 per feature (128 columns); transposed, 1 per
    // feature (the chunk's kBK columns of R lie in one word: c0 % kBK == 0).
    if constexpr (!kTransposed) {
      if (tid < 2 * kBK) {
        const uint64_t rk = row_key(p.key, p.feature_offset + c0 + (tid >> 1));
        words[tid] = word_of(rk, (col0 >> 6) + (tid & 1));
      }
    } else {
      if (tid < kBN) words[tid] = word_of(rkeys[tid], c0 >> 6);
    }
    __syncthreads();
#pragma unroll
    for (int it = 0; it < S::kSignItems; ++it) {
      const int item = tid + it * kThreads;
      if constexpr (!kTransposed) {  // B[p][8 g .. 8 g + 8] of feature p
        const int pp = item >> 4, g = item & 15;
        const uint32_t bits = static_cast<uint32_t>(words[2 * pp + (g >> 3)] >> (8 * (g & 7))) & 0xFFu;
        expand_signs(bits, In::kOnePair, b_tile + pp * kLdB + 8 * g);
      } else {  // B^T[c][8 g .. 8 g + 8] of feature c
        const int c = item / (kBK / 8), g = item % (kBK / 8);
        const uint32_t bits = static_cast<uint32_t>(words[c] >> ((c0 & 63) + 8 * g)) & 0xFFu;
        expand_signs(bits, In::kOnePair, b_tile + c * kLdBt + 8 * g);
      }
    }
    __syncthreads();
    if (c0 + kBK < r_end) chunk.load(p, row0, c0 + kBK, r_end);  // in flight during the MMAs

    // The chunk's products go to fresh fragments, then into acc with fp32 adds.
    Frag part[S::kFM][S::kFN];
#pragma unroll
    for (int i = 0; i < S::kFM; ++i)
#pragma unroll
      for (int j = 0; j < S::kFN; ++j) wmma::fill_fragment(part[i][j], 0.0f);
#pragma unroll
    for (int kk = 0; kk < kBK / 16; ++kk) {
      wmma::fragment<wmma::matrix_b, 16, 16, 16, T, BLayout> b[S::kFN];
#pragma unroll
      for (int j = 0; j < S::kFN; ++j) {
        const int n0 = (wn * S::kFN + j) * 16;
        if constexpr (kTransposed)
          wmma::load_matrix_sync(b[j], b_tile + n0 * kLdBt + 16 * kk, kLdBt);
        else
          wmma::load_matrix_sync(b[j], b_tile + 16 * kk * kLdB + n0, kLdB);
      }
#pragma unroll
      for (int i = 0; i < S::kFM; ++i) {
        const int m0 = (wm * S::kFM + i) * 16;
        wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> a[In::kParts];
        wmma::load_matrix_sync(a[0], a_hi + m0 * kLdA + 16 * kk, kLdA);
        if constexpr (In::kParts == 2) wmma::load_matrix_sync(a[1], a_lo + m0 * kLdA + 16 * kk, kLdA);
#pragma unroll
        for (int j = 0; j < S::kFN; ++j)
#pragma unroll
          for (int h = 0; h < In::kParts; ++h) wmma::mma_sync(part[i][j], a[h], b[j], part[i][j]);
      }
    }
#pragma unroll
    for (int i = 0; i < S::kFM; ++i)
#pragma unroll
      for (int j = 0; j < S::kFN; ++j)
#pragma unroll
        for (int e = 0; e < Frag::num_elements; ++e) acc[i][j].x[e] += part[i][j].x[e];
  }

  // Epilogue: each warp stages one 16x16 fragment at a time in shared memory
  // and writes the in-bounds part (partial tiles at every edge).
  __syncthreads();
  float* scratch = reinterpret_cast<float*>(smem) + warp * 16 * kLdC;
  const int64_t cols = p.cols;
#pragma unroll
  for (int i = 0; i < S::kFM; ++i)
#pragma unroll
    for (int j = 0; j < S::kFN; ++j) {
      wmma::store_matrix_sync(scratch, acc[i][j], kLdC, wmma::mem_row_major);
      __syncwarp();
      const int64_t r_tile = row0 + (wm * S::kFM + i) * 16;
      const int64_t c_tile = col0 + (wn * S::kFN + j) * 16;
#pragma unroll
      for (int e = lane; e < 256; e += 32) {
        const int64_t r = r_tile + (e >> 4), c = c_tile + (e & 15);
        if (r < p.m && c < cols) {
          const float v = scratch[(e >> 4) * kLdC + (e & 15)];
          if (p.partial != nullptr)
            p.partial[(slice * p.m + r) * cols + c] = v;
          else
            p.out[r * cols + c] = v * p.scale;
        }
      }
      __syncwarp();
    }
#else
  __trap();  // built for an architecture without bf16 tensor cores: the dispatcher never picks this
#endif
}

int pick_rows(int64_t n) {
  if (n > 32) return n > 64 ? 128 : 64;
  return n > 16 ? 32 : 16;
}

template <int BM, Elem E, bool kTransposed>
cudaError_t launch_typed(const MmaParams& base, int64_t slices, cudaStream_t stream) {
  const int64_t col_tiles = ceil_div(base.cols, kBN);
  return launch_row_groups(base.m, BM, [&](int64_t r0, int64_t row_blocks) {
    MmaParams p = base;
    p.row_offset = r0;
    const dim3 grid(static_cast<unsigned>(col_tiles), static_cast<unsigned>(row_blocks),
                    static_cast<unsigned>(slices));
    rademacher_mma_kernel<BM, E, kTransposed><<<grid, TileShape<BM, E>::kThreads, 0, stream>>>(p);
  });
}

template <Elem E, bool kTransposed>
cudaError_t launch_rows(int bm, const MmaParams& p, int64_t slices, cudaStream_t stream) {
  switch (bm) {
    case 16: return launch_typed<16, E, kTransposed>(p, slices, stream);
    case 32: return launch_typed<32, E, kTransposed>(p, slices, stream);
    case 64: return launch_typed<64, E, kTransposed>(p, slices, stream);
    default: return launch_typed<128, E, kTransposed>(p, slices, stream);
  }
}

template <bool kTransposed>
cudaError_t launch_direction(Elem elem, int bm, const MmaParams& p, int64_t slices,
                             cudaStream_t stream) {
  switch (elem) {
    case Elem::kF32: return launch_rows<Elem::kF32, kTransposed>(bm, p, slices, stream);
    case Elem::kBF16: return launch_rows<Elem::kBF16, kTransposed>(bm, p, slices, stream);
    case Elem::kF16: return launch_rows<Elem::kF16, kTransposed>(bm, p, slices, stream);
    default: return cudaErrorInvalidValue;  // float64 goes to the SIMT kernels
  }
}

}  // namespace

Plan plan_dense_mma(const SketchParams& p) {
  return plan_dense(p, Engine::kDenseMma, pick_rows(p.n), kBN, chunk_len(p.elem), /*min_chunks=*/8);
}

cudaError_t launch_dense_mma(const SketchParams& sp, const Plan& plan, void* partial,
                             cudaStream_t stream) {
  MmaParams p{dense_gemm<float>(sp, plan, partial)};
  // Rows start 16-byte aligned and vectors of 8 elements never straddle a row.
  p.a_vector = sp.stride_col == 1 && (sp.n == 1 || sp.stride_row % 8 == 0) &&
               reinterpret_cast<uintptr_t>(sp.x) % 16 == 0;
  if (sp.transposed) return launch_direction<true>(sp.elem, plan.tile_rows, p, plan.slices, stream);
  return launch_direction<false>(sp.elem, plan.tile_rows, p, plan.slices, stream);
}

}  // namespace trustattr::cuda
