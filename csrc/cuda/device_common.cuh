// Helpers shared by the CUDA sketch kernel files: the host-side split planning,
// the kernels' common parameters and row-group launches, element loads with any
// strides and 64-bit indices. No torch headers.
#pragma once

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "sketch_cuda.h"

namespace trustattr::cuda {

constexpr int64_t kMaxGridY = 65535;  // gridDim.y / gridDim.z limit: rows launch in groups

// Blocks one launch aims for (about two per SM of a 132-SM H100). A constant,
// not the device's SM count, so the summation order is the same on every GPU.
constexpr int64_t kTargetBlocks = 264;
constexpr int64_t kMaxSlices = 1024;

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Cuts a reduction of `len` elements into slices of whole `chunk`s so that
// `tiles` output tiles times the slices give about `target` blocks, with at
// least `min_chunks` chunks per slice. Sets plan.slices and plan.slice_len.
inline void split_reduction(int64_t tiles, int64_t len, int64_t chunk, int64_t min_chunks,
                            Plan& plan, int64_t target = kTargetBlocks) {
  const int64_t chunks = ceil_div(len, chunk);
  int64_t slices = 1;
  if (tiles < target) {
    slices = ceil_div(target, tiles);
    const int64_t most = chunks / min_chunks > 1 ? chunks / min_chunks : 1;
    slices = slices < most ? slices : most;
    slices = slices < kMaxSlices ? slices : kMaxSlices;
  }
  const int64_t chunks_per_slice = ceil_div(chunks, slices);
  plan.slices = ceil_div(chunks, chunks_per_slice);  // no empty slice
  plan.slice_len = chunks_per_slice * chunk;
}

// Bytes of the [slices, n, out_cols] partial sums (0 when one slice suffices).
inline size_t partial_bytes(const Plan& plan, const SketchParams& p) {
  if (plan.slices <= 1) return 0;
  const int64_t out_cols = p.transposed ? p.d : p.k;
  const int64_t elem = p.elem == Elem::kF64 ? 8 : 4;
  return static_cast<size_t>(plan.slices * p.n * out_cols * elem);
}

// Plan of a dense kernel (dense_mma.cu, dense_simt.cu): output tiles of `tile_rows`
// rows x `block_cols` columns, the reduction (d forward, k transposed) cut into
// slices of whole `chunk`s, at least `min_chunks` per slice.
inline Plan plan_dense(const SketchParams& p, Engine engine, int tile_rows, int64_t block_cols,
                       int64_t chunk, int64_t min_chunks) {
  Plan plan{};
  plan.engine = engine;
  plan.tile_rows = tile_rows;
  const int64_t cols = p.transposed ? p.d : p.k;
  const int64_t red = p.transposed ? p.k : p.d;
  const int64_t tiles = ceil_div(cols, block_cols) * ceil_div(p.n, plan.tile_rows);
  split_reduction(tiles, red, chunk, min_chunks, plan);
  plan.workspace_bytes = partial_bytes(plan, p);
  return plan;
}

// What every sketch kernel reads, from SketchParams and its Plan. A (the input
// rows, any strides) is the left operand of every sketch: x forward, y transposed.
template <typename Acc>
struct KernelParams {
  const void* a;
  int64_t a_stride_row, a_stride_col;
  Acc* out;            // written scaled when partial == nullptr
  Acc* partial;        // [slices, rows, out columns] unscaled, or nullptr
  int64_t row_offset;  // first row of this launch (launch_row_groups)
  int64_t slice_len;   // reduction elements per slice
  uint64_t key;
  int64_t feature_offset;
  Acc scale;
};

template <typename Acc>
KernelParams<Acc> kernel_params(const SketchParams& sp, const Plan& plan, void* partial) {
  KernelParams<Acc> p{};
  p.a = sp.x;
  p.a_stride_row = sp.stride_row;
  p.a_stride_col = sp.stride_col;
  p.out = static_cast<Acc*>(sp.out);
  p.partial = plan.slices > 1 ? static_cast<Acc*>(partial) : nullptr;
  p.slice_len = plan.slice_len;
  p.key = sp.key;
  p.feature_offset = sp.feature_offset;
  p.scale = static_cast<Acc>(sp.scale);
  return p;
}

// The dense kernels' GEMM: C [m, cols] = A [m, red] * B, B generated.
template <typename Acc>
struct DenseGemm : KernelParams<Acc> {
  int64_t m, cols, red;
};

template <typename Acc>
DenseGemm<Acc> dense_gemm(const SketchParams& sp, const Plan& plan, void* partial) {
  DenseGemm<Acc> g{kernel_params<Acc>(sp, plan, partial)};
  g.m = sp.n;
  g.cols = sp.transposed ? sp.d : sp.k;
  g.red = sp.transposed ? sp.k : sp.d;
  return g;
}

// Rows [0, n) in launches of at most kMaxGridY blocks of `rows_per_block` rows
// along grid y: launch(row_offset, row_blocks) for each group in order. Returns
// the first launch error.
template <typename Launch>
cudaError_t launch_row_groups(int64_t n, int64_t rows_per_block, Launch&& launch) {
  const int64_t most = kMaxGridY * rows_per_block;
  for (int64_t r0 = 0; r0 < n; r0 += most) {
    launch(r0, ceil_div(n - r0 < most ? n - r0 : most, rows_per_block));
    const cudaError_t err = cudaGetLastError();
    if (err != cudaSuccess) return err;
  }
  return cudaSuccess;
}

// x[index] converted to Acc (float or double). bf16 and fp16 are read as raw
// 16-bit words and widened exactly (no reliance on the half operators that
// torch's build flags disable).
template <Elem E, typename Acc>
__device__ __forceinline__ Acc load_elem(const void* base, int64_t index) {
  if constexpr (E == Elem::kF32) {
    return static_cast<Acc>(__ldg(static_cast<const float*>(base) + index));
  } else if constexpr (E == Elem::kF64) {
    return static_cast<Acc>(__ldg(static_cast<const double*>(base) + index));
  } else if constexpr (E == Elem::kBF16) {
    const uint32_t bits = __ldg(static_cast<const unsigned short*>(base) + index);
    return static_cast<Acc>(__uint_as_float(bits << 16));
  } else {
    const unsigned short bits = __ldg(static_cast<const unsigned short*>(base) + index);
    return static_cast<Acc>(__half2float(__ushort_as_half(bits)));
  }
}

// SJLT block boundaries t*k/nnz for t <= min(nnz, kMaxCachedStarts), written to
// shared memory by the calling block (the caller synchronizes afterwards).
constexpr int kMaxCachedStarts = 64;

__device__ __forceinline__ void fill_sjlt_starts(int64_t* starts, int64_t nnz, int64_t k) {
  const int64_t count = (nnz < kMaxCachedStarts ? nnz : kMaxCachedStarts) + 1;
  for (int64_t t = threadIdx.x; t < count; t += blockDim.x) starts[t] = sjlt_block_start(t, nnz, k);
}

// The t-th SJLT hit of a feature row, block bounds from `starts` when cached.
__device__ __forceinline__ SjltHit sjlt_hit_cached(const int64_t* starts, uint64_t rkey, int64_t t,
                                                   int64_t nnz, int64_t k) {
  if (t < kMaxCachedStarts) {
    const int64_t lo = starts[t];
    return sjlt_hit_in_block(rkey, t, lo, static_cast<uint64_t>(starts[t + 1] - lo));
  }
  return sjlt_hit(rkey, t, nnz, k);
}

}  // namespace trustattr::cuda
