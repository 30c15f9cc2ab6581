// Plain-data interface of the CUDA sketch kernels (no torch types).
//
// The torch launcher (project_cuda.cu) validates the tensors, fills a
// SketchParams, asks plan_sketch() how much scratch memory the chosen kernel
// needs, allocates it with the caching allocator and calls launch_sketch() on
// the current stream. Everything below compiles without any torch header, so
// the kernel files build in seconds (tools/check_cuda_compile.sh).
//
// Kernel families (see the comment at the top of each file):
//   dense_mma.cu    rademacher on tensor cores (compute capability >= 8.0):
//                   bf16/fp16 inputs directly, fp32 inputs split into bf16 hi + lo
//   dense_simt.cu   gaussian (fp32 FMA), every float64 input (fp64 FMA), and
//                   rademacher on GPUs without bf16 tensor cores
//   sparse.cu       sjlt: shared-memory scatter (forward), pure gather (transposed)
//   random_matrix.cu  materialized R, one thread per entry
//   sketch_dispatch.cu  picks the family, the split plan and the slice reduction
//
// The random matrix of every kernel comes from sketch_rng.h, the same code the
// CPU kernels run, so entry (d, j) is bit-identical on CPU and GPU. Launch
// plans are a function of the shapes only (never of the GPU's SM count), so a
// given kernel sums in the same order on every GPU.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "../sketch_call.h"

namespace trustattr::cuda {

// One call (sketch_call.h): table is the device copy of the gaussian table.
using SketchParams = SketchCall;

// What the launcher reads off the device (cudaDeviceGetAttribute).
struct DeviceCaps {
  int cc_major;           // compute capability major version
  int smem_optin_bytes;   // cudaDevAttrMaxSharedMemoryPerBlockOptin
};

enum class Engine : int { kDenseMma = 0, kDenseSimt = 1, kSparse = 2 };

// How one call is cut into blocks. Dense: the reduction dimension (d forward,
// k transposed) is cut into `slices` ranges of `slice_len`; each slice writes
// an unscaled partial [n, out_cols] and a second kernel sums the slices in
// order. Sparse forward: the same over features, with `tile_rows` rows and
// `col_tile` output columns per block.
struct Plan {
  Engine engine;
  int tile_rows;          // rows of x per block
  int64_t slices;         // 1: the kernel writes the scaled output directly
  int64_t slice_len;      // reduction elements per slice
  int64_t col_tile;       // sparse forward: output columns per block
  size_t smem_bytes;      // dynamic shared memory per block (sparse forward)
  size_t workspace_bytes; // scratch for the partial sums (0 when slices == 1)
};

Plan plan_sketch(const SketchParams& p, const DeviceCaps& caps);

// Writes p.out (never accumulates). Returns the first CUDA error of its launches.
cudaError_t launch_sketch(const SketchParams& p, const Plan& plan, void* workspace,
                          cudaStream_t stream);

// R [d, k] (rows feature_offset .. feature_offset + d - 1), float or double.
cudaError_t launch_random_matrix(void* out, bool is_double, int64_t d, int64_t k, uint64_t key,
                                 SketchKind kind, int64_t feature_offset, int64_t nnz,
                                 double scale, const float* table, cudaStream_t stream);

// ---- per-family entry points (used by sketch_dispatch.cu) ----

Plan plan_dense_mma(const SketchParams& p);
cudaError_t launch_dense_mma(const SketchParams& p, const Plan& plan, void* partial,
                             cudaStream_t stream);
Plan plan_dense_simt(const SketchParams& p);
cudaError_t launch_dense_simt(const SketchParams& p, const Plan& plan, void* partial,
                              cudaStream_t stream);
Plan plan_sparse(const SketchParams& p, const DeviceCaps& caps);
cudaError_t launch_sparse(const SketchParams& p, const Plan& plan, void* partial,
                          cudaStream_t stream);

// out[i] = scale * sum_s partial[s * count + i], slices added in order.
cudaError_t launch_reduce_slices(const void* partial, bool is_double, int64_t slices,
                                 int64_t count, double scale, void* out, cudaStream_t stream);

}  // namespace trustattr::cuda
