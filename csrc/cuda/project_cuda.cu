// CUDA launchers of project / project_t, the CUDA random_matrix, and their
// registration. This is the only CUDA file that sees at::Tensor: it validates
// the arguments with the CPU launcher's checks (same messages), sets the
// device, fills a SketchParams and runs the plan of sketch_dispatch.cu on the
// current stream. Scratch memory for slice partials comes from the caching
// allocator (stream-ordered, no cudaMalloc per call).
//
// Inputs of any strides are read in place (no .contiguous() copy); indices
// are 64-bit throughout. Outputs are float32 (float64 for float64 input).
#include <ATen/ATen.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <mutex>
#include <vector>

#include "../checks.h"
#include "../gaussian_table.h"
#include "../sketch_ops.h"
#include "sketch_cuda.h"

namespace trustattr {
namespace {

// The gaussian quantile table on `device`, copied from the CPU table once per
// device. The tensors are never freed (a static destructor running after the
// CUDA runtime shut down would crash at exit).
const float* gaussian_table_cuda(c10::DeviceIndex index) {
  static std::mutex mutex;
  static auto* tables = new std::vector<at::Tensor>();
  std::lock_guard<std::mutex> lock(mutex);
  if (tables->size() <= static_cast<size_t>(index)) tables->resize(index + 1);
  at::Tensor& table = (*tables)[index];
  if (!table.defined()) {
    table = gaussian_table_cpu().to(at::Device(at::kCUDA, index));
    // Other streams may read it next: finish the copy before publishing it.
    c10::cuda::getCurrentCUDAStream(index).synchronize();
  }
  return table.data_ptr<float>();
}

cuda::DeviceCaps device_caps(c10::DeviceIndex index) {
  cuda::DeviceCaps caps{};
  C10_CUDA_CHECK(cudaDeviceGetAttribute(&caps.cc_major, cudaDevAttrComputeCapabilityMajor, index));
  C10_CUDA_CHECK(cudaDeviceGetAttribute(&caps.smem_optin_bytes,
                                        cudaDevAttrMaxSharedMemoryPerBlockOptin, index));
  return caps;
}

// Shared body of project (x [N, D] -> [N, k]) and project_t (y [N, k] -> [N, D]).
at::Tensor sketch_cuda(const at::Tensor& x, int64_t d, int64_t k, int64_t seed,
                       c10::string_view kind, int64_t feature_offset, int64_t nnz, bool transposed) {
  const SketchKind sk = check_project(x, d, k, kind, feature_offset, nnz, transposed);
  check_cuda(x, sketch_op(transposed), sketch_arg(transposed));

  const c10::cuda::CUDAGuard guard(x.device());
  const int64_t n = x.size(0);
  at::Tensor out = at::empty({n, transposed ? d : k}, sketch_options(x));
  if (n == 0) return out;

  const float* table = sk == SketchKind::kGaussian ? gaussian_table_cuda(x.get_device()) : nullptr;
  const cuda::SketchParams p = sketch_call(x, out, d, k, seed, sk, feature_offset, nnz, transposed, table);

  const cuda::Plan plan = cuda::plan_sketch(p, device_caps(x.get_device()));
  at::Tensor workspace;
  if (plan.workspace_bytes > 0)
    workspace = at::empty({static_cast<int64_t>(plan.workspace_bytes)}, x.options().dtype(at::kByte));
  C10_CUDA_CHECK(cuda::launch_sketch(p, plan, workspace.defined() ? workspace.data_ptr() : nullptr,
                                     c10::cuda::getCurrentCUDAStream()));
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

// Installed into random_matrix_cuda_hook(); trustattr.cpp has validated the
// arguments already.
at::Tensor random_matrix_cuda(int64_t D, int64_t k, int64_t seed, SketchKind kind,
                              int64_t feature_offset, int64_t nnz, at::ScalarType dtype,
                              at::Device device) {
  const c10::DeviceIndex index = device.has_index() ? device.index() : c10::cuda::current_device();
  const c10::cuda::CUDAGuard guard(index);
  at::Tensor out = at::empty({D, k}, at::TensorOptions().dtype(dtype).device(at::kCUDA, index));
  const float* table = kind == SketchKind::kGaussian ? gaussian_table_cuda(index) : nullptr;
  C10_CUDA_CHECK(cuda::launch_random_matrix(out.data_ptr(), dtype == at::kDouble, D, k,
                                            seed_key(seed, kind), kind, feature_offset, nnz,
                                            sketch_scale(kind, k, nnz), table,
                                            c10::cuda::getCurrentCUDAStream()));
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

[[maybe_unused]] const bool kRandomMatrixHookInstalled = [] {
  random_matrix_cuda_hook() = &random_matrix_cuda;
  return true;
}();

}  // namespace

TORCH_LIBRARY_IMPL(trustattr, CUDA, m) {
  m.impl("project", &project_op<sketch_cuda>);
  m.impl("project_t", &project_t_op<sketch_cuda>);
}

}  // namespace trustattr
