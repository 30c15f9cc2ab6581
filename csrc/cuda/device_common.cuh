// Helpers shared by the CUDA kernel files: element loads with any strides and
// 64-bit indices, and the host-side split planning. No torch headers.
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
