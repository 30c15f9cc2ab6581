// Torch-side helpers shared by the CUDA launchers of issue 5
// (grad_sketch_cuda.cu, score_cuda.cu).
#pragma once

#include <ATen/ATen.h>
#include <c10/cuda/CUDAStream.h>

#include "../checks.h"
#include "attr_cuda.h"

namespace trustattr {

// A 2-D tensor read in place (any strides, a float dtype that passed the checks).
inline cuda::MatrixView matrix_view(const at::Tensor& t) {
  return cuda::MatrixView{t.data_ptr(), t.stride(0), t.stride(1), elem_of(t.scalar_type())};
}

// A 3-D tensor [N, T, C] read in place (any strides).
inline cuda::TokensView tokens_view(const at::Tensor& t) {
  return cuda::TokensView{t.data_ptr(), t.stride(0), t.stride(1), t.stride(2)};
}

inline cudaStream_t current_stream() { return c10::cuda::getCurrentCUDAStream().stream(); }

}  // namespace trustattr
