// Helpers shared by the CPU launchers of issue 5 (grad_sketch_cpu.cpp, score_cpu.cpp).
#pragma once

#include <ATen/ATen.h>

namespace trustattr {

// t itself when its last dimension has unit stride (a memory-mapped file stays
// mapped), else a contiguous copy.
inline at::Tensor unit_last_stride(const at::Tensor& t) {
  return t.size(-1) <= 1 || t.stride(-1) == 1 ? t : t.contiguous();
}

}  // namespace trustattr
