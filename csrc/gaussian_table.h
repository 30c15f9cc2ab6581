// The 65,536 N(0, 1) quantiles behind the `gaussian` sketch (see sketch_rng.h).
#pragma once

#include <ATen/ATen.h>

namespace trustattr {

// float32 [65536], Q[q] = Phi^-1((q + 0.5) / 65536), computed once with ATen's
// float64 ndtri on the CPU (the PyTorch reference computes it the same way).
const at::Tensor& gaussian_table_cpu();

}  // namespace trustattr
