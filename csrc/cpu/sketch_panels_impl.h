// The dense sketch kernels' building blocks: the register-blocked micro-kernel
// (MR rows x NR = two SIMD vectors of columns, written into a small buffer),
// row packing, and the generators of random-matrix panels (forward: R[d0 + p,
// j0 + c]; transposed: R[d0 + c, j0 + p]) from the sketch_rng.h words.
// Part of sketch_cpu_impl.h (namespace TA_ISA_NS).
#pragma once

#include <string.h>

#include <cstdint>

#include "simd_impl.h"

namespace trustattr::cpu::TA_ISA_NS {
namespace {

// Rows per micro-kernel call: MR x 2 vectors of accumulators plus the two panel
// vectors and a broadcast must fit the register file: 12 x 2 = 24 of 32 (AVX-512,
// NEON), 6 x 2 = 12 of 16 (AVX2: the 6 x 16 floats of BLIS's Haswell kernel; SSE2).
// The shape never changes a sum: every output entry is one chain over features.
constexpr int kMaxMR = kVecRegs >= 32 ? 12 : 6;

// Copies of each packed A element: SSE2 has no broadcast load (movss + shufps per
// element and step), so its packed rows hold every element as a whole vector and the
// micro-kernel multiplies straight from memory. One copy elsewhere.
template <typename T>
constexpr int64_t pack_copies() {
#if TA_VEC_BYTES == 16 && !defined(__aarch64__)
  return VecOf<T>::lanes;
#else
  return 1;
#endif
}

// Panel width: two vectors of output columns.
template <typename T>
constexpr int64_t panel_width() { return 2 * VecOf<T>::lanes; }

// ------------------------------------------------------------ micro-kernel

// ct[MR, NR] = sum_p ap[p, MR] (outer) bp[p, NR]; ap is packed row-block major.
// With dst (row stride ld, a whole panel of NR columns), the tile is added into dst
// instead: dst[r, c] += ct[r, c], the same single addition add_panel_product does.
template <typename T, int MR>
void micro_kernel(int64_t kc, const T* __restrict ap, const T* __restrict bp,
                  T* __restrict ct, T* __restrict dst, int64_t ld) {
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
    if constexpr (pack_copies<T>() > 1) {
      const T* a = ap + p * MR * L;
      for (int r = 0; r < MR; ++r) {
        V av;
        memcpy(&av, a + r * L, sizeof(V));
        c0[r] += av * b0;
        c1[r] += av * b1;
      }
    } else {
      const T* a = ap + p * MR;
      for (int r = 0; r < MR; ++r) {
        c0[r] += a[r] * b0;
        c1[r] += a[r] * b1;
      }
    }
  }
  if (dst != nullptr) {
    for (int r = 0; r < MR; ++r) {
      V d0, d1;
      memcpy(&d0, dst + r * ld, sizeof(V));
      memcpy(&d1, dst + r * ld + L, sizeof(V));
      d0 += c0[r];
      d1 += c1[r];
      memcpy(dst + r * ld, &d0, sizeof(V));
      memcpy(dst + r * ld + L, &d1, sizeof(V));
    }
    return;
  }
  for (int r = 0; r < MR; ++r) {
    memcpy(ct + r * 2 * L, &c0[r], sizeof(V));
    memcpy(ct + r * 2 * L + L, &c1[r], sizeof(V));
  }
}

template <typename T>
void micro_dispatch(int mr, int64_t kc, const T* ap, const T* bp, T* ct, T* dst, int64_t ld) {
  switch (mr) {
    case 1: return micro_kernel<T, 1>(kc, ap, bp, ct, dst, ld);
    case 2: return micro_kernel<T, 2>(kc, ap, bp, ct, dst, ld);
    case 3: return micro_kernel<T, 3>(kc, ap, bp, ct, dst, ld);
    case 4: return micro_kernel<T, 4>(kc, ap, bp, ct, dst, ld);
    case 5: return micro_kernel<T, 5>(kc, ap, bp, ct, dst, ld);
    case 6: return micro_kernel<T, 6>(kc, ap, bp, ct, dst, ld);
  }
  if constexpr (kMaxMR > 6) switch (mr) {
    case 7: return micro_kernel<T, 7>(kc, ap, bp, ct, dst, ld);
    case 8: return micro_kernel<T, 8>(kc, ap, bp, ct, dst, ld);
    case 9: return micro_kernel<T, 9>(kc, ap, bp, ct, dst, ld);
    case 10: return micro_kernel<T, 10>(kc, ap, bp, ct, dst, ld);
    case 11: return micro_kernel<T, 11>(kc, ap, bp, ct, dst, ld);
    default: return micro_kernel<T, kMaxMR>(kc, ap, bp, ct, dst, ld);
  }
}

// Rows [0, rows) in ceil(rows / kMaxMR) nearly equal micro-kernel blocks (64 rows on
// AVX2: 4 x 6 + 8 x 5 rather than 10 x 6 + 4, whose 4-row block is latency-bound).
// Rows are independent: the split changes no sum.
inline int64_t row_block_count(int64_t rows) { return ceil_div(rows, kMaxMR); }
inline int64_t row_block_begin(int64_t rows, int64_t b) { return b * rows / row_block_count(rows); }

// Packs rows [0, rows) x columns [c0, c0 + kc) of x (row stride sr, column
// stride sc) into the row blocks above: block b holds [kc][mr_b] at ap + begin_b * kc.
template <Elem E, typename T>
void pack_rows(const void* x, int64_t sr, int64_t sc, int64_t rows, int64_t c0,
               int64_t kc, T* ap) {
  for (int64_t b = 0; b < row_block_count(rows); ++b) {
    const int64_t rb = row_block_begin(rows, b), mr = row_block_begin(rows, b + 1) - rb;
    constexpr int64_t C = pack_copies<T>();
    T* block = ap + rb * kc * C;
    for (int64_t r = 0; r < mr; ++r) {
      const int64_t base = (rb + r) * sr + c0 * sc;
      for (int64_t p = 0; p < kc; ++p) {
        const T v = load_elem<E, T>(x, base + p * sc);
        for (int64_t c = 0; c < C; ++c) block[(p * mr + r) * C + c] = v;
      }
    }
  }
}

// ------------------------------------------------------- panel generators

// Forward panel: bp[p, c] = R[d0 + p, j0 + c] (unscaled), with rkeys[p] the row
// keys of features d0 + p. j0 is a multiple of the panel width, and the panels of a
// chunk come in increasing j0 from a multiple of 64 (words: kc scratch words).
template <typename T>
void panel_forward(SketchKind kind, const uint64_t* rkeys, int64_t kc, int64_t j0,
                   const float* table, T* bp, uint64_t* words) {
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
    // words[p]: word j0 / 64 of feature p, hashed by the first panel of each 64 columns
    // and reused by the others (NR < 64 below AVX-512: the hash dominated the panel).
    if ((j0 & 63) == 0)
      for (int64_t p = 0; p < kc; ++p) words[p] = word_of(rkeys[p], j0 >> 6);
    for (int64_t p = 0; p < kc; ++p) {
      const uint64_t w = words[p] >> (j0 & 63);
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
  if (kind == SketchKind::kRademacher) {
    // Column c's word, cut into 64 / LB lane-wide parts held in vectors over c: the
    // sign of (c, j) is bit (j % LB) of part (j % 64) / LB, shifted into the sign bit
    // of 1.0 for all NR columns at once (the same values as the scalar rule).
    using V = typename VecOf<T>::type;
    using B = typename VecOf<T>::bits;
    using Lane = typename VecOf<T>::lane_t;
    constexpr int L = VecOf<T>::lanes;
    constexpr int LB = sizeof(Lane) * 8, P = 64 / LB;
    constexpr Lane one = VecOf<T>::one_bits;
    B part[P][2];
    for (int64_t p = 0; p < kc; ++p) {
      const int64_t j = j0 + p;
      if (p == 0 || (j & 63) == 0)
        for (int64_t c = 0; c < NR; ++c) {
          const uint64_t w = word_of(rkeys[c], j >> 6);
          for (int q = 0; q < P; ++q) part[q][c / L][c % L] = static_cast<Lane>(w >> (q * LB));
        }
      const int bit = static_cast<int>(j & 63);
      for (int v = 0; v < 2; ++v) {
        const B sg = ((part[bit / LB][v] >> (bit % LB)) << (LB - 1)) | one;
        V out;
        memcpy(&out, &sg, sizeof(V));
        memcpy(bp + p * NR + v * L, &out, sizeof(V));
      }
    }
    return;
  }
  uint64_t words[NR];
  for (int64_t p = 0; p < kc; ++p) {
    const int64_t j = j0 + p;
    if (p == 0 || (j & 3) == 0)
      for (int64_t c = 0; c < NR; ++c) words[c] = word_of(rkeys[c], j >> 2);
    for (int64_t c = 0; c < NR; ++c)
      bp[p * NR + c] = static_cast<T>(table[(words[c] >> (16 * (j & 3))) & 0xFFFFu]);
  }
}

}  // namespace
}  // namespace trustattr::cpu::TA_ISA_NS
