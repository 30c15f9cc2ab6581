// Device helpers shared by the issue-5 kernel files (grad_sketch.cu, score.cu,
// datainf.cu). No torch headers.
#pragma once

#include <type_traits>

#include "attr_cuda.h"
#include "device_common.cuh"

namespace trustattr::cuda {

constexpr int64_t kMaxGridX = 2147483647;  // gridDim.x limit (y and z: kMaxGridY)

// One explicitly rounded fused multiply-add (never left to the compiler's
// contraction choices, so every build sums the same way).
__device__ __forceinline__ float fma_acc(float a, float b, float c) { return __fmaf_rn(a, b, c); }
__device__ __forceinline__ double fma_acc(double a, double b, double c) { return __fma_rn(a, b, c); }

// Accumulation type of an input element type: double for float64, else float.
template <Elem E>
using AccOf = typename std::conditional<E == Elem::kF64, double, float>::type;

// Input rows of output row s: [begin, end) positions in members.order.
struct MemberRange {
  int64_t begin, end;
};

__device__ __forceinline__ MemberRange member_range(const Members& m, int64_t s) {
  if (m.start == nullptr) return MemberRange{s, s + 1};
  return MemberRange{m.start[s], m.start[s + 1]};
}

__device__ __forceinline__ int64_t member_row(const Members& m, int64_t position) {
  return m.order == nullptr ? position : m.order[position];
}

// Sum of `value` over the 32 lanes of a warp by a fixed halving tree; the
// result is valid in lane 0.
template <typename T>
__device__ __forceinline__ T warp_sum(T value) {
#pragma unroll
  for (int offset = 16; offset >= 1; offset >>= 1) value += __shfl_down_sync(0xFFFFFFFFu, value, offset);
  return value;
}

// Dispatches an element type to a functor template: Fn<E>::run(args...).
template <template <Elem> class Fn, typename... Args>
cudaError_t dispatch_elem(Elem e, Args&&... args) {
  switch (e) {
    case Elem::kF32: return Fn<Elem::kF32>::run(args...);
    case Elem::kF64: return Fn<Elem::kF64>::run(args...);
    case Elem::kBF16: return Fn<Elem::kBF16>::run(args...);
    default: return Fn<Elem::kF16>::run(args...);
  }
}

}  // namespace trustattr::cuda
