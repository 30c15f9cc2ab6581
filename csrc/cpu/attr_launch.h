// Helpers shared by the CPU launchers of issue 5 (grad_sketch_cpu.cpp, score_cpu.cpp).
#pragma once

#include <ATen/ATen.h>

#include "sketch_cpu.h"

namespace trustattr {

inline cpu::Elem elem_of(at::ScalarType dt) {
  switch (dt) {
    case at::kFloat: return cpu::Elem::kF32;
    case at::kDouble: return cpu::Elem::kF64;
    case at::kBFloat16: return cpu::Elem::kBF16;
    default: return cpu::Elem::kF16;
  }
}

// t itself when its last dimension has unit stride (a memory-mapped file stays
// mapped), else a contiguous copy.
inline at::Tensor unit_last_stride(const at::Tensor& t) {
  return t.size(-1) <= 1 || t.stride(-1) == 1 ? t : t.contiguous();
}

}  // namespace trustattr
