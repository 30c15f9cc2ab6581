// The CPU sketch kernels, written once with GCC vector extensions and compiled
// once per instruction set (sketch_isa_*.cpp). Include only from those files:
// every function here lives in the namespace named by TA_ISA_NS so the
// variants never collide.
//
// Dense sketches (rademacher, gaussian) are a GEMM whose right operand is
// generated on the fly: for each chunk of kDenseChunk features, a panel of the
// random matrix ([chunk, NR] for NR = two SIMD vectors of columns) is written
// into a cache-resident buffer and multiplied with every row of the batch by a
// register-blocked micro-kernel (MR rows x NR columns of accumulators). One
// generated panel serves all rows, so the generator costs 1/N of the FLOPs.
//
// Determinism: a row's result depends only on (x row, seed, d, k, kind).
// Feature sums run in a fixed order (chunks in order; inside a chunk, features
// in order), and the number of feature groups summed separately is a function
// of (d, k) only -- never of the batch size or the thread count.
#pragma once

#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include <cstdint>
#include <utility>

#include "sketch_cpu.h"

#ifndef TA_ISA_NS
#error "define TA_ISA_NS before including sketch_cpu_impl.h"
#endif

namespace trustattr::cpu::TA_ISA_NS {
namespace {

constexpr int64_t kDenseChunk = 256;   // features per generated panel
constexpr int64_t kSparseChunk = 2048; // features per block of SJLT hits
constexpr int64_t kRowSlab = 1024;     // rows per independent pass (bounds scratch memory)
constexpr int kMaxMR = 12;             // rows per micro-kernel call
constexpr int64_t kColGroup = 128;     // output columns per work item (dense forward)
constexpr int64_t kStageStride = kSparseChunk + 32;  // padded row stride of the sjlt staging buffer
constexpr int64_t kSparseRows = 8;     // rows per work item (sjlt transposed)

template <typename T>
struct VecOf;
template <>
struct VecOf<float> {
  typedef float type __attribute__((vector_size(64)));
  typedef uint32_t lane_t;
  typedef uint32_t bits __attribute__((vector_size(64)));
  static constexpr int lanes = 16;
  static constexpr uint32_t one_bits = 0x3F800000u;  // 1.0f
};
template <>
struct VecOf<double> {
  typedef double type __attribute__((vector_size(64)));
  typedef uint64_t lane_t;
  typedef uint64_t bits __attribute__((vector_size(64)));
  static constexpr int lanes = 8;
  static constexpr uint64_t one_bits = 0x3FF0000000000000ULL;  // 1.0
};

// Panel width: two vectors of output columns.
template <typename T>
constexpr int64_t panel_width() { return 2 * VecOf<T>::lanes; }

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

// ------------------------------------------------------------ micro-kernel

// ct[MR, NR] = sum_p ap[p, MR] (outer) bp[p, NR]; ap is packed row-block major.
template <typename T, int MR>
void micro_kernel(int64_t kc, const T* __restrict ap, const T* __restrict bp,
                  T* __restrict ct) {
  using V = typename VecOf<T>::type;
  constexpr int L = VecOf<T>::lanes;
  V c0[MR], c1[MR];
  for (int r = 0; r < MR; ++r) {
    c0[r] = V{};
    c1[r] = V{};
  }
  for (int64_t p = 0; p < kc; ++p) {
    V b0, b1;
    memcpy(&b0, bp + p * 2 * L, sizeof(V));
    memcpy(&b1, bp + p * 2 * L + L, sizeof(V));
    const T* a = ap + p * MR;
    for (int r = 0; r < MR; ++r) {
      c0[r] += a[r] * b0;
      c1[r] += a[r] * b1;
    }
  }
  for (int r = 0; r < MR; ++r) {
    memcpy(ct + r * 2 * L, &c0[r], sizeof(V));
    memcpy(ct + r * 2 * L + L, &c1[r], sizeof(V));
  }
}

template <typename T>
void micro_dispatch(int mr, int64_t kc, const T* ap, const T* bp, T* ct) {
  switch (mr) {
    case 1: return micro_kernel<T, 1>(kc, ap, bp, ct);
    case 2: return micro_kernel<T, 2>(kc, ap, bp, ct);
    case 3: return micro_kernel<T, 3>(kc, ap, bp, ct);
    case 4: return micro_kernel<T, 4>(kc, ap, bp, ct);
    case 5: return micro_kernel<T, 5>(kc, ap, bp, ct);
    case 6: return micro_kernel<T, 6>(kc, ap, bp, ct);
    case 7: return micro_kernel<T, 7>(kc, ap, bp, ct);
    case 8: return micro_kernel<T, 8>(kc, ap, bp, ct);
    case 9: return micro_kernel<T, 9>(kc, ap, bp, ct);
    case 10: return micro_kernel<T, 10>(kc, ap, bp, ct);
    case 11: return micro_kernel<T, 11>(kc, ap, bp, ct);
    default: return micro_kernel<T, 12>(kc, ap, bp, ct);
  }
}

// Packs rows [0, rows) x columns [c0, c0 + kc) of x (row stride sr, column
// stride sc) into row blocks of kMaxMR rows: block b holds [kc][mr_b].
template <Elem E, typename T>
void pack_rows(const void* x, int64_t sr, int64_t sc, int64_t rows, int64_t c0,
               int64_t kc, T* ap) {
  for (int64_t rb = 0; rb < rows; rb += kMaxMR) {
    const int64_t mr = rows - rb < kMaxMR ? rows - rb : kMaxMR;
    T* block = ap + rb * kc;
    for (int64_t r = 0; r < mr; ++r) {
      const int64_t base = (rb + r) * sr + c0 * sc;
      for (int64_t p = 0; p < kc; ++p) block[p * mr + r] = load_elem<E, T>(x, base + p * sc);
    }
  }
}

// ------------------------------------------------------- panel generators

// Forward panel: bp[p, c] = R[d0 + p, j0 + c] (unscaled), with rkeys[p] the row
// keys of features d0 + p. j0 is a multiple of the panel width.
template <typename T>
void panel_forward(SketchKind kind, const uint64_t* rkeys, int64_t kc, int64_t j0,
                   const float* table, T* bp) {
  constexpr int64_t NR = panel_width<T>();
  if (kind == SketchKind::kRademacher) {
    using V = typename VecOf<T>::type;
    using B = typename VecOf<T>::bits;
    constexpr int L = VecOf<T>::lanes;
    using Lane = typename VecOf<T>::lane_t;
    constexpr int kSignShift = sizeof(Lane) * 8 - 1;
    constexpr Lane one = VecOf<T>::one_bits;
    B lane_lo, lane_hi;
    for (int i = 0; i < L; ++i) {
      lane_lo[i] = static_cast<Lane>(i);
      lane_hi[i] = static_cast<Lane>(i + L);
    }
    for (int64_t p = 0; p < kc; ++p) {
      const uint64_t w = word_of(rkeys[p], j0 >> 6) >> (j0 & 63);
      const B wv = B{} + static_cast<Lane>(w & ((NR == 64) ? ~0ULL : ((1ULL << NR) - 1)));
      const B s0 = ((wv >> lane_lo) << kSignShift) | one;
      const B s1 = ((wv >> lane_hi) << kSignShift) | one;
      V v0, v1;
      memcpy(&v0, &s0, sizeof(V));
      memcpy(&v1, &s1, sizeof(V));
      memcpy(bp + p * NR, &v0, sizeof(V));
      memcpy(bp + p * NR + L, &v1, sizeof(V));
    }
  } else {  // gaussian: four 16-bit table indices per word
    for (int64_t p = 0; p < kc; ++p) {
      for (int64_t q = 0; q < NR / 4; ++q) {
        const uint64_t w = word_of(rkeys[p], (j0 >> 2) + q);
        for (int s = 0; s < 4; ++s)
          bp[p * NR + 4 * q + s] = static_cast<T>(table[(w >> (16 * s)) & 0xFFFFu]);
      }
    }
  }
}

// Transposed panel: bp[p, c] = R[d0 + c, j0 + p] (unscaled), rkeys[c] the row
// keys of features d0 + c (NR of them).
template <typename T>
void panel_transposed(SketchKind kind, const uint64_t* rkeys, int64_t kc, int64_t j0,
                      const float* table, T* bp) {
  constexpr int64_t NR = panel_width<T>();
  uint64_t words[NR];
  for (int64_t p = 0; p < kc; ++p) {
    const int64_t j = j0 + p;
    if (kind == SketchKind::kRademacher) {
      if (p == 0 || (j & 63) == 0)
        for (int64_t c = 0; c < NR; ++c) words[c] = word_of(rkeys[c], j >> 6);
      for (int64_t c = 0; c < NR; ++c)
        bp[p * NR + c] = ((words[c] >> (j & 63)) & 1ULL) ? T(-1) : T(1);
    } else {
      if (p == 0 || (j & 3) == 0)
        for (int64_t c = 0; c < NR; ++c) words[c] = word_of(rkeys[c], j >> 2);
      for (int64_t c = 0; c < NR; ++c)
        bp[p * NR + c] = static_cast<T>(table[(words[c] >> (16 * (j & 3))) & 0xFFFFu]);
    }
  }
}

// -------------------------------------------------------------- partitions

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Feature groups summed separately (then added in group order). A function of
// (d, k) only, so results never depend on the batch size or thread count.
inline int64_t dense_feature_groups(int64_t d, int64_t col_groups) {
  if (col_groups >= 16) return 1;
  int64_t g = ceil_div(16, col_groups);
  const int64_t cap = d / 2048 > 1 ? d / 2048 : 1;
  return g < cap ? g : cap;
}

// Features per SJLT work item, a function of k only (never of the batch size or
// thread count). Large against k, so zeroing and writing out the [rows, k]
// accumulator stays a small share of an item's work.
inline int64_t sparse_group_size(int64_t k) {
  int64_t size = 32768;
  while (size < 16 * k) size *= 2;
  return size;
}

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

// ------------------------------------------------------------ dense forward

template <Elem E, typename T>
void dense_forward(const SketchArgs& a, const void* x, int64_t rows, T* out) {
  constexpr int64_t NR = panel_width<T>();
  const int64_t d = a.d, k = a.k;
  const int64_t col_blocks = ceil_div(k, NR);
  const int64_t blocks_per_group = kColGroup / NR;
  const int64_t col_groups = ceil_div(col_blocks, blocks_per_group);
  const int64_t groups = dense_feature_groups(d, col_groups);
  const int64_t count = rows * k;
  T* partial = scratch<T>(groups * count);
  memset(partial, 0, sizeof(T) * groups * count);
  const uint64_t key = seed_key(a.seed, a.kind);
  const int nt = a.num_threads;

#pragma omp parallel num_threads(nt)
  {
    T* ap = scratch<T>(ceil_div(rows, kMaxMR) * kMaxMR * kDenseChunk);
    T* bp = scratch<T>(kDenseChunk * NR);
    T* ct = scratch<T>(kMaxMR * NR);
    uint64_t* rkeys = scratch<uint64_t>(kDenseChunk);
#pragma omp for schedule(dynamic, 1)
    for (int64_t item = 0; item < col_groups * groups; ++item) {
      const int64_t cg = item % col_groups, g = item / col_groups;
      const int64_t f_begin = g * d / groups, f_end = (g + 1) * d / groups;
      const int64_t cb_begin = cg * blocks_per_group;
      const int64_t cb_end = cb_begin + blocks_per_group < col_blocks ? cb_begin + blocks_per_group
                                                                      : col_blocks;
      T* dst = partial + g * count;
      for (int64_t f0 = f_begin; f0 < f_end; f0 += kDenseChunk) {
        const int64_t kc = f_end - f0 < kDenseChunk ? f_end - f0 : kDenseChunk;
        pack_rows<E, T>(x, a.x_stride_row, a.x_stride_col, rows, f0, kc, ap);
        for (int64_t p = 0; p < kc; ++p) rkeys[p] = row_key(key, a.feature_offset + f0 + p);
        for (int64_t cb = cb_begin; cb < cb_end; ++cb) {
          const int64_t j0 = cb * NR;
          const int64_t width = k - j0 < NR ? k - j0 : NR;
          panel_forward<T>(a.kind, rkeys, kc, j0, a.gaussian_table, bp);
          for (int64_t rb = 0; rb < rows; rb += kMaxMR) {
            const int mr = static_cast<int>(rows - rb < kMaxMR ? rows - rb : kMaxMR);
            micro_dispatch<T>(mr, kc, ap + rb * kc, bp, ct);
            for (int r = 0; r < mr; ++r) {
              T* orow = dst + (rb + r) * k + j0;
              const T* crow = ct + r * NR;
              for (int64_t c = 0; c < width; ++c) orow[c] += crow[c];
            }
          }
        }
      }
    }
    free(ap);
    free(bp);
    free(ct);
    free(rkeys);
  }
  reduce_groups<T>(partial, groups, count, static_cast<T>(a.scale), out, nt);
  free(partial);
}

// ------------------------------------------------------- dense transposed

template <Elem E, typename T>
void dense_transposed(const SketchArgs& a, const void* y, int64_t rows, T* out) {
  constexpr int64_t NR = panel_width<T>();
  const int64_t d = a.d, k = a.k;
  const int64_t feat_blocks = ceil_div(d, NR);
  const int64_t blocks_per_item = 4;
  const int64_t items = ceil_div(feat_blocks, blocks_per_item);
  const uint64_t key = seed_key(a.seed, a.kind);
  const int nt = a.num_threads;
  memset(out, 0, sizeof(T) * rows * d);

#pragma omp parallel num_threads(nt)
  {
    T* ap = scratch<T>(ceil_div(rows, kMaxMR) * kMaxMR * kDenseChunk);
    T* bp = scratch<T>(kDenseChunk * NR);
    T* ct = scratch<T>(kMaxMR * NR);
    uint64_t* rkeys = scratch<uint64_t>(blocks_per_item * NR);
#pragma omp for schedule(dynamic, 1)
    for (int64_t item = 0; item < items; ++item) {
      const int64_t fb_begin = item * blocks_per_item;
      const int64_t fb_end = fb_begin + blocks_per_item < feat_blocks ? fb_begin + blocks_per_item
                                                                      : feat_blocks;
      for (int64_t fb = fb_begin; fb < fb_end; ++fb)
        for (int64_t c = 0; c < NR; ++c)
          rkeys[(fb - fb_begin) * NR + c] = row_key(key, a.feature_offset + fb * NR + c);
      for (int64_t j0 = 0; j0 < k; j0 += kDenseChunk) {
        const int64_t kc = k - j0 < kDenseChunk ? k - j0 : kDenseChunk;
        pack_rows<E, T>(y, a.x_stride_row, a.x_stride_col, rows, j0, kc, ap);
        for (int64_t fb = fb_begin; fb < fb_end; ++fb) {
          const int64_t f0 = fb * NR;
          const int64_t width = d - f0 < NR ? d - f0 : NR;
          panel_transposed<T>(a.kind, rkeys + (fb - fb_begin) * NR, kc, j0, a.gaussian_table, bp);
          for (int64_t rb = 0; rb < rows; rb += kMaxMR) {
            const int mr = static_cast<int>(rows - rb < kMaxMR ? rows - rb : kMaxMR);
            micro_dispatch<T>(mr, kc, ap + rb * kc, bp, ct);
            for (int r = 0; r < mr; ++r) {
              T* orow = out + (rb + r) * d + f0;
              const T* crow = ct + r * NR;
              for (int64_t c = 0; c < width; ++c) orow[c] += crow[c];
            }
          }
        }
      }
    }
    free(ap);
    free(bp);
    free(ct);
    free(rkeys);
  }
  scale_in_place<T>(out, rows * d, static_cast<T>(a.scale), nt);
}

// ----------------------------------------------------------------- sparse

// Fills bucket/sign for features [f0, f0 + kc), nnz hits each. starts holds
// the nnz + 1 block boundaries t*k/nnz (see sjlt_block_starts). The hashes run
// eight features at a time in 64-bit vector lanes; the formulas are those of
// sketch_rng.h (row_key, word_of, sjlt_hit_in_block).
template <typename T>
void sjlt_hits(const SketchArgs& a, uint64_t key, const int64_t* starts, int64_t f0, int64_t kc,
               int32_t* bucket, T* sign) {
  typedef uint64_t U __attribute__((vector_size(64)));
  constexpr int W = 8;
  const int64_t nnz = a.nnz;
  const auto mix = [](U z) {
    z ^= z >> 30;
    z *= 0xBF58476D1CE4E5B9ULL;
    z ^= z >> 27;
    z *= 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  };
  U lane;
  for (int i = 0; i < W; ++i) lane[i] = static_cast<uint64_t>(i);
  int64_t p = 0;
  for (; p + W <= kc; p += W) {
    const U feature = (U{} + static_cast<uint64_t>(a.feature_offset + f0 + p)) + lane;
    const U rk = mix((U{} + key) + feature * kGolden);
    for (int64_t t = 0; t < nnz; ++t) {
      const U h = mix(rk + static_cast<uint64_t>(t) * kWeyl);
      const U offset = ((h & 0xFFFFFFFFULL) * static_cast<uint64_t>(starts[t + 1] - starts[t])) >> 32;
      const U negative = h >> 63;
      if (nnz == 1) {  // contiguous: store whole vectors
        typedef int32_t I __attribute__((vector_size(32)));
        typedef T S __attribute__((vector_size(W * sizeof(T))));
        const I b = __builtin_convertvector(offset, I) + static_cast<int32_t>(starts[0]);
        const S sg = S{} + T(1) - T(2) * __builtin_convertvector(negative, S);
        memcpy(bucket + p, &b, sizeof(I));
        memcpy(sign + p, &sg, sizeof(S));
        continue;
      }
      for (int i = 0; i < W; ++i) {
        bucket[(p + i) * nnz + t] = static_cast<int32_t>(starts[t] + static_cast<int64_t>(offset[i]));
        sign[(p + i) * nnz + t] = negative[i] ? T(-1) : T(1);
      }
    }
  }
  for (; p < kc; ++p) {
    const uint64_t rk = row_key(key, a.feature_offset + f0 + p);
    for (int64_t t = 0; t < nnz; ++t) {
      const SjltHit h =
          sjlt_hit_in_block(rk, t, starts[t], static_cast<uint64_t>(starts[t + 1] - starts[t]));
      bucket[p * nnz + t] = static_cast<int32_t>(h.bucket);
      sign[p * nnz + t] = h.negative ? T(-1) : T(1);
    }
  }
}

inline int64_t* sjlt_block_starts(const SketchArgs& a) {
  int64_t* starts = scratch<int64_t>(a.nnz + 1);
  for (int64_t t = 0; t <= a.nnz; ++t) starts[t] = sjlt_block_start(t, a.nnz, a.k);
  return starts;
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

template <Elem E>
constexpr int64_t elem_size() {
  return E == Elem::kF64 ? 8 : (E == Elem::kF32 ? 4 : 2);
}

// Software prefetch (to L2) of `bytes` bytes starting `offset` bytes into x.
inline void prefetch_run(const void* x, int64_t offset, int64_t bytes) {
  const char* p = static_cast<const char*>(x) + offset;
  for (int64_t i = 0; i < bytes; i += 64) __builtin_prefetch(p + i, 0, 2);
}

// Copies `count` elements of one row (converted to T) into a contiguous buffer.
template <Elem E, typename T>
inline void stage_row(const void* x, int64_t base, int64_t stride, int64_t count, T* dst) {
  constexpr bool native = (E == Elem::kF32 && sizeof(T) == 4) || (E == Elem::kF64 && sizeof(T) == 8);
  if (native && stride == 1) {
    memcpy(dst, static_cast<const T*>(x) + base, sizeof(T) * count);
  } else {
    for (int64_t i = 0; i < count; ++i) dst[i] = load_elem<E, T>(x, base + i * stride);
  }
  // Zero the tail up to the next full vector so every block load is defined.
  for (int64_t i = count; i < ((count + VecOf<T>::lanes - 1) / VecOf<T>::lanes) * VecOf<T>::lanes; ++i)
    dst[i] = T(0);
}

// SJLT forward. A work item is one feature group: its hits are hashed once and
// reused by every row. Rows go one SIMD vector at a time (16 float / 8 double
// rows): the rows' chunk is staged, transposed in registers into
// xt[feature][row lane], and the scatter-add updates acc[bucket][row lane] with
// one vector FMA per (feature, hit), up to 4 row vectors per pass so acc stays
// in L2. Each lane sums its own row in feature order, as every path does.
template <Elem E, typename T>
void sparse_forward(const SketchArgs& a, const void* x, int64_t rows, T* out) {
  using V = typename VecOf<T>::type;
  constexpr int L = VecOf<T>::lanes;
  const int64_t d = a.d, k = a.k, nnz = a.nnz;
  const int64_t group_size = sparse_group_size(k);
  const int64_t groups = ceil_div(d, group_size);
  // Row vectors per pass: as many as keep acc within ~256 KiB (and the batch needs).
  int64_t vecs = (256 * 1024) / (k * static_cast<int64_t>(sizeof(V)));
  vecs = vecs < 1 ? 1 : (vecs > 4 ? 4 : vecs);
  vecs = vecs < ceil_div(rows, L) ? vecs : ceil_div(rows, L);
  const int64_t rows_per_pass = vecs * L;
  const int64_t count = rows * k;
  T* partial = scratch<T>(groups * count);
  const uint64_t key = seed_key(a.seed, a.kind);
  const int nt = a.num_threads;

#pragma omp parallel num_threads(nt)
  {
    int32_t* bucket = scratch<int32_t>(group_size * nnz);
    T* sign = scratch<T>(group_size * nnz);
    int64_t* starts = sjlt_block_starts(a);
    V* xt = scratch<V>(vecs * kSparseChunk);  // [row vector][feature] of row lanes
    V* acc = scratch<V>(k * vecs);             // [bucket][row vector] of row lanes
    T* stage = scratch<T>(L * kStageStride);   // [row lane][feature], padded rows
    V block[L];
#pragma omp for schedule(dynamic, 1)
    for (int64_t g = 0; g < groups; ++g) {
      const int64_t f_begin = g * group_size;
      const int64_t f_end = f_begin + group_size < d ? f_begin + group_size : d;
      sjlt_hits<T>(a, key, starts, f_begin, f_end - f_begin, bucket, sign);
      for (int64_t r_begin = 0; r_begin < rows; r_begin += rows_per_pass) {
        const int64_t pass_rows = rows - r_begin < rows_per_pass ? rows - r_begin : rows_per_pass;
        const int64_t used_vecs = ceil_div(pass_rows, L);
        for (int64_t j = 0; j < k * vecs; ++j) acc[j] = V{};
        for (int64_t f0 = f_begin; f0 < f_end; f0 += kSparseChunk) {
          const int64_t kc = f_end - f0 < kSparseChunk ? f_end - f0 : kSparseChunk;
          for (int64_t v = 0; v < used_vecs; ++v) {
            const int64_t lanes = pass_rows - v * L < L ? pass_rows - v * L : L;
            // Stage the rows' chunks one row at a time first: rows of a power-of-two
            // length share cache sets, so reading L of them in lock step thrashes L1.
            for (int64_t l = 0; l < lanes; ++l) {
              const int64_t row_base = (r_begin + v * L + l) * a.x_stride_row;
              stage_row<E, T>(x, row_base + f0 * a.x_stride_col, a.x_stride_col, kc,
                              stage + l * kStageStride);
              // Each row is read in runs of kSparseChunk features: prefetch the next
              // run into L2 now, so the next chunk does not wait on DRAM latency.
              if (a.x_stride_col == 1 && f0 + kc < f_end)
                prefetch_run(x, (row_base + f0 + kc) * elem_size<E>(),
                             (f_end - f0 - kc < kc ? f_end - f0 - kc : kc) * elem_size<E>());
            }
            for (int64_t l = lanes; l < L; ++l) memset(stage + l * kStageStride, 0, sizeof(T) * kStageStride);
            for (int64_t p0 = 0; p0 < kc; p0 += L) {
              for (int l = 0; l < L; ++l) memcpy(&block[l], stage + l * kStageStride + p0, sizeof(V));
              transpose_block<T>(block);
              V* xv = xt + v * kSparseChunk + p0;
              if (kc - p0 >= L) {
                for (int i = 0; i < L; ++i) xv[i] = block[i];
              } else {
                for (int64_t i = 0; i < kc - p0; ++i) xv[i] = block[i];
              }
            }
          }
          const int32_t* cb = bucket + (f0 - f_begin) * nnz;
          const T* cs = sign + (f0 - f_begin) * nnz;
          for (int64_t p = 0; p < kc; ++p) {
            for (int64_t t = 0; t < nnz; ++t) {
              V* dst = acc + static_cast<int64_t>(cb[p * nnz + t]) * vecs;
              const T sg = cs[p * nnz + t];
              for (int64_t v = 0; v < used_vecs; ++v) dst[v] += sg * xt[v * kSparseChunk + p];
            }
          }
        }
        // Transpose acc back into rows, L buckets at a time.
        T* dst = partial + g * count + r_begin * k;
        for (int64_t v = 0; v < used_vecs; ++v) {
          const int64_t lanes = pass_rows - v * L < L ? pass_rows - v * L : L;
          for (int64_t j0 = 0; j0 < k; j0 += L) {
            const int64_t width = k - j0 < L ? k - j0 : L;
            for (int i = 0; i < L; ++i) block[i] = i < width ? acc[(j0 + i) * vecs + v] : V{};
            transpose_block<T>(block);
            for (int64_t l = 0; l < lanes; ++l)
              memcpy(dst + (v * L + l) * k + j0, &block[l], sizeof(T) * width);
          }
        }
      }
    }
    free(bucket);
    free(sign);
    free(starts);
    free(xt);
    free(acc);
    free(stage);
  }
  reduce_groups<T>(partial, groups, count, static_cast<T>(a.scale), out, nt);
  free(partial);
}

template <Elem E, typename T>
void sparse_transposed(const SketchArgs& a, const void* y, int64_t rows, T* out) {
  const int64_t d = a.d, nnz = a.nnz;
  const int64_t chunks = ceil_div(d, kSparseChunk);
  const int64_t row_groups = ceil_div(rows, kSparseRows);
  const uint64_t key = seed_key(a.seed, a.kind);
  const T scale = static_cast<T>(a.scale);
  const int nt = a.num_threads;

#pragma omp parallel num_threads(nt)
  {
    int32_t* bucket = scratch<int32_t>(kSparseChunk * nnz);
    T* sign = scratch<T>(kSparseChunk * nnz);
    int64_t* starts = sjlt_block_starts(a);
#pragma omp for schedule(dynamic, 1)
    for (int64_t item = 0; item < chunks * row_groups; ++item) {
      const int64_t ch = item / row_groups, rg = item % row_groups;
      const int64_t f0 = ch * kSparseChunk;
      const int64_t kc = d - f0 < kSparseChunk ? d - f0 : kSparseChunk;
      const int64_t r_begin = rg * kSparseRows;
      const int64_t r_end = r_begin + kSparseRows < rows ? r_begin + kSparseRows : rows;
      sjlt_hits<T>(a, key, starts, f0, kc, bucket, sign);
      for (int64_t r = r_begin; r < r_end; ++r) {
        const int64_t base = r * a.x_stride_row;
        T* orow = out + r * d + f0;
        for (int64_t p = 0; p < kc; ++p) {
          T acc = T(0);
          for (int64_t t = 0; t < nnz; ++t)
            acc += sign[p * nnz + t] *
                   load_elem<E, T>(y, base + bucket[p * nnz + t] * a.x_stride_col);
          orow[p] = acc * scale;
        }
      }
    }
    free(bucket);
    free(sign);
    free(starts);
  }
}

// ------------------------------------------------------------------ entry

template <Elem E, typename T>
void run_typed(const SketchArgs& a) {
  const int64_t out_cols = a.transposed ? a.d : a.k;
  T* out = static_cast<T*>(a.out);
  const size_t elem_bytes = E == Elem::kF64 ? 8 : (E == Elem::kF32 ? 4 : 2);
  for (int64_t r0 = 0; r0 < a.n; r0 += kRowSlab) {
    const int64_t rows = a.n - r0 < kRowSlab ? a.n - r0 : kRowSlab;
    const void* x = static_cast<const char*>(a.x) + r0 * a.x_stride_row * elem_bytes;
    T* o = out + r0 * out_cols;
    if (a.kind == SketchKind::kSjlt) {
      if (a.transposed) sparse_transposed<E, T>(a, x, rows, o);
      else sparse_forward<E, T>(a, x, rows, o);
    } else {
      if (a.transposed) dense_transposed<E, T>(a, x, rows, o);
      else dense_forward<E, T>(a, x, rows, o);
    }
  }
}

}  // namespace

void run(const SketchArgs& a) {
  switch (a.x_elem) {
    case Elem::kF32: return run_typed<Elem::kF32, float>(a);
    case Elem::kF64: return run_typed<Elem::kF64, double>(a);
    case Elem::kBF16: return run_typed<Elem::kBF16, float>(a);
    default: return run_typed<Elem::kF16, float>(a);
  }
}

}  // namespace trustattr::cpu::TA_ISA_NS
