// Torch-side helpers shared by the CUDA launchers of issue 5
// (grad_sketch_cuda.cu, score_cuda.cu).
#pragma once

#include <ATen/ATen.h>
#include <c10/cuda/CUDAStream.h>

#include "attr_cuda.h"

namespace trustattr {

inline cudaStream_t current_stream() { return c10::cuda::getCurrentCUDAStream().stream(); }

}  // namespace trustattr
