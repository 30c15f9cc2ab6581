// Element type of the tensors the kernels read, in the plain-data interfaces of
// the CPU (cpu/sketch_cpu.h, cpu/attr_cpu.h) and CUDA (cuda/sketch_cuda.h,
// cuda/attr_cuda.h) kernels. No torch types: the launchers map at::ScalarType
// with elem_of (checks.h).
#pragma once

namespace trustattr {

enum class Elem : int { kF32 = 0, kF64 = 1, kBF16 = 2, kF16 = 3 };

}  // namespace trustattr
