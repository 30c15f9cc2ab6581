// Torch-side helpers shared by the CUDA launchers of issue 5
// (grad_sketch_cuda.cu, score_cuda.cu).
#pragma once

#include <ATen/ATen.h>
#include <c10/cuda/CUDAStream.h>

#include "attr_cuda.h"

namespace trustattr {

inline cuda::Elem cuda_elem(at::ScalarType dt) {
  switch (dt) {
    case at::kFloat: return cuda::Elem::kF32;
    case at::kDouble: return cuda::Elem::kF64;
    case at::kBFloat16: return cuda::Elem::kBF16;
    default: return cuda::Elem::kF16;
  }
}

inline cudaStream_t current_stream() { return c10::cuda::getCurrentCUDAStream().stream(); }

}  // namespace trustattr
