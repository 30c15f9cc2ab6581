// Chooses the kernel family for a sketch, and sums slice partials in order.
//
//   sjlt                                  -> sparse.cu
//   float64 input (either dense kind)     -> dense_simt.cu, fp64 FMAs
//   gaussian                              -> dense_simt.cu, fp32 FMAs
//   rademacher, compute capability >= 8.0 -> dense_mma.cu, bf16/fp16 tensor cores
//   rademacher, older GPUs                -> dense_simt.cu, fp32 FMAs
//
// The slice reduction adds partial[0], partial[1], ... in that order and then
// scales, like the CPU kernels' reduce_groups: a fixed order, no atomics.
#include "device_common.cuh"

namespace trustattr::cuda {
namespace {

constexpr int kReduceThreads = 256;

template <typename T>
__global__ void __launch_bounds__(kReduceThreads)
    reduce_slices_kernel(const T* __restrict__ partial, int64_t slices, int64_t count, T scale,
                         T* __restrict__ out) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * kReduceThreads;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * kReduceThreads + threadIdx.x; i < count;
       i += stride) {
    T acc = partial[i];
    for (int64_t s = 1; s < slices; ++s) acc += partial[s * count + i];
    out[i] = acc * scale;
  }
}

Engine pick_engine(const SketchParams& p, const DeviceCaps& caps) {
  if (p.kind == SketchKind::kSjlt) return Engine::kSparse;
  if (p.elem == Elem::kF64 || p.kind == SketchKind::kGaussian || caps.cc_major < 8)
    return Engine::kDenseSimt;
  return Engine::kDenseMma;
}

}  // namespace

Plan plan_sketch(const SketchParams& p, const DeviceCaps& caps) {
  switch (pick_engine(p, caps)) {
    case Engine::kSparse: return plan_sparse(p, caps);
    case Engine::kDenseSimt: return plan_dense_simt(p);
    default: return plan_dense_mma(p);
  }
}

cudaError_t launch_sketch(const SketchParams& p, const Plan& plan, void* workspace,
                          cudaStream_t stream) {
  if (plan.slices > 1 && workspace == nullptr) return cudaErrorInvalidValue;
  cudaError_t err;
  switch (plan.engine) {
    case Engine::kSparse: err = launch_sparse(p, plan, workspace, stream); break;
    case Engine::kDenseSimt: err = launch_dense_simt(p, plan, workspace, stream); break;
    default: err = launch_dense_mma(p, plan, workspace, stream); break;
  }
  if (err != cudaSuccess || plan.slices <= 1) return err;
  const int64_t count = p.n * (p.transposed ? p.d : p.k);
  return launch_reduce_slices(workspace, p.elem == Elem::kF64, plan.slices, count, p.scale, p.out,
                              stream);
}

cudaError_t launch_reduce_slices(const void* partial, bool is_double, int64_t slices,
                                 int64_t count, double scale, void* out, cudaStream_t stream) {
  int64_t blocks = ceil_div(count, kReduceThreads);
  blocks = blocks < 4096 ? blocks : 4096;
  if (is_double) {
    reduce_slices_kernel<double><<<static_cast<unsigned>(blocks), kReduceThreads, 0, stream>>>(
        static_cast<const double*>(partial), slices, count, scale, static_cast<double*>(out));
  } else {
    reduce_slices_kernel<float><<<static_cast<unsigned>(blocks), kReduceThreads, 0, stream>>>(
        static_cast<const float*>(partial), slices, count, static_cast<float>(scale),
        static_cast<float*>(out));
  }
  return cudaGetLastError();
}

}  // namespace trustattr::cuda
