// SIMD vector types, element loads and conversions, scratch memory, the
// in-register block transpose and the small parallel loops shared by every CPU
// kernel (the sketches of sketch_cpu_impl.h and the issue-5 kernels of
// attr_common_impl.h). Compiled once per instruction set: include only from
// the sketch_isa_*.cpp / attr_isa_*.cpp files, after defining TA_ISA_NS, so
// the variants never collide. No torch header may be included here.
#pragma once

#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include <cstdint>
#include <type_traits>
#include <utility>

#include "sketch_cpu.h"

#ifndef TA_ISA_NS
#error "define TA_ISA_NS before including simd_impl.h"
#endif

namespace trustattr::cpu::TA_ISA_NS {
namespace {

// Vector width and register file of the instruction set this copy is compiled
// for: the defining *_isa_*.cpp file sets TA_VEC_BYTES (64 AVX-512, 32 AVX2,
// 16 baseline: SSE2 on x86-64, NEON on aarch64); the register count follows.
// Every kernel sizes its register tiles from these two numbers, so a narrower
// ISA runs native vectors that fit its registers instead of splitting 64-byte
// vectors and spilling (issue 17).
#ifndef TA_VEC_BYTES
#error "define TA_VEC_BYTES (64, 32 or 16) before including simd_impl.h"
#endif
constexpr int kVecBytes = TA_VEC_BYTES;
#if TA_VEC_BYTES == 64 || defined(__aarch64__)
constexpr int kVecRegs = 32;  // zmm0-31 (AVX-512), v0-31 (NEON)
#else
constexpr int kVecRegs = 16;  // ymm0-15 (AVX2), xmm0-15 (SSE2)
#endif

// A SIMD vector of B bytes of T (float or double), its unsigned integer lanes
// of the same width (for sign tricks) and the bits of 1.0.
template <typename T, int B>
struct VecBytes {
  static_assert(sizeof(T) == 4 || sizeof(T) == 8, "VecOf: float or double");
  typedef T type __attribute__((vector_size(B)));
  typedef std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t> lane_t;
  typedef lane_t bits __attribute__((vector_size(B)));
  static constexpr int lanes = B / sizeof(T);
  static constexpr lane_t one_bits =
      sizeof(T) == 4 ? lane_t(0x3F800000u) : lane_t(0x3FF0000000000000ULL);  // 1.0f, 1.0
};

// The native vector of this instruction set (16 floats AVX-512, 8 AVX2, 4 SSE2/NEON).
template <typename T>
struct VecOf : VecBytes<T, kVecBytes> {};

// A 64-byte vector whatever the instruction set (split into 2 or 4 native
// registers below AVX-512): the scoring dot products are defined over 16 float
// / 8 double lanes on every ISA, so their sums keep one order everywhere.
template <typename T>
struct Vec64Of : VecBytes<T, 64> {};

// ---------------------------------------------------------------- loading

inline float half_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exponent = (h >> 10) & 0x1Fu;
  const uint32_t mantissa = h & 0x3FFu;
  uint32_t bits;
  if (exponent == 0) {
    float value = static_cast<float>(mantissa) * 5.9604644775390625e-8f;  // 2^-24
    memcpy(&bits, &value, 4);
    bits |= sign;
  } else if (exponent == 31) {
    bits = sign | 0x7F800000u | (mantissa << 13);
  } else {
    bits = sign | ((exponent + 112u) << 23) | (mantissa << 13);
  }
  float out;
  memcpy(&out, &bits, 4);
  return out;
}

inline float bf16_to_float(uint16_t h) {
  const uint32_t bits = static_cast<uint32_t>(h) << 16;
  float out;
  memcpy(&out, &bits, 4);
  return out;
}

template <Elem E, typename Acc>
inline Acc load_elem(const void* base, int64_t index) {
  if constexpr (E == Elem::kF32) {
    return static_cast<Acc>(static_cast<const float*>(base)[index]);
  } else if constexpr (E == Elem::kF64) {
    return static_cast<Acc>(static_cast<const double*>(base)[index]);
  } else if constexpr (E == Elem::kBF16) {
    return static_cast<Acc>(bf16_to_float(static_cast<const uint16_t*>(base)[index]));
  } else {
    return static_cast<Acc>(half_to_float(static_cast<const uint16_t*>(base)[index]));
  }
}

template <typename T>
T* scratch(int64_t count) {
  const size_t bytes = ((static_cast<size_t>(count) * sizeof(T) + 63) / 64) * 64;
  return static_cast<T*>(aligned_alloc(64, bytes > 0 ? bytes : 64));
}

template <Elem E>
constexpr int64_t elem_size() {
  return E == Elem::kF64 ? 8 : (E == Elem::kF32 ? 4 : 2);
}

// Software prefetch (to L2) of `bytes` bytes starting `offset` bytes into x.
inline void prefetch_run(const void* x, int64_t offset, int64_t bytes) {
  const char* p = static_cast<const char*>(x) + offset;
  for (int64_t i = 0; i < bytes; i += 64) __builtin_prefetch(p + i, 0, 2);
}

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// --------------------------------------------------------- parallel loops

// out[i] = scale * sum_g partial[g][i], groups added in order.
template <typename T>
void reduce_groups(const T* partial, int64_t groups, int64_t count, T scale, T* out, int nt) {
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int64_t i = 0; i < count; ++i) {
    T acc = partial[i];
    for (int64_t g = 1; g < groups; ++g) acc += partial[g * count + i];
    out[i] = acc * scale;
  }
}

template <typename T>
void scale_in_place(T* out, int64_t count, T scale, int nt) {
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int64_t i = 0; i < count; ++i) out[i] *= scale;
}

// ------------------------------------------------------- register transpose

// Stage h of a recursive block transpose: row a keeps the first h of every 2h
// columns of a then of b; row b the second h (see transpose_block).
constexpr int stage_index(int c, int h, int lanes, bool second) {
  const int block = c / (2 * h), within = c % (2 * h), shift = second ? h : 0;
  return within < h ? block * 2 * h + within + shift : lanes + block * 2 * h + within - h + shift;
}

template <typename V, int H, int L, size_t... I>
inline void transpose_stage(V& a, V& b, std::index_sequence<I...>) {
  const V na = __builtin_shufflevector(a, b, stage_index(I, H, L, false)...);
  const V nb = __builtin_shufflevector(a, b, stage_index(I, H, L, true)...);
  a = na;
  b = nb;
}

template <typename V, int L, int H>
inline void transpose_stages(V* rows) {
  if constexpr (H >= 1) {
    for (int i = 0; i < L; ++i)
      if ((i & H) == 0) transpose_stage<V, H, L>(rows[i], rows[i + H], std::make_index_sequence<L>{});
    transpose_stages<V, L, H / 2>(rows);
  }
}

// In-register transpose of an L x L block held as L row vectors.
template <typename T>
inline void transpose_block(typename VecOf<T>::type* rows) {
  constexpr int L = VecOf<T>::lanes;
  transpose_stages<typename VecOf<T>::type, L, L / 2>(rows);
}

}  // namespace
}  // namespace trustattr::cpu::TA_ISA_NS
