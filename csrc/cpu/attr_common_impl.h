// Shared by the issue-5 CPU kernels (grad_sketch_impl.h, score_impl.h,
// topk_impl.h, datainf_impl.h): internal-linkage helpers, dtype conversion, and
// the accumulate-into-C GEMM micro-kernels with their rademacher panel generator,
// and the dispatch from element type to typed kernel.
// Included by the attr_isa_*.cpp files only, once per instruction set;
// everything lives in namespace TA_ISA_NS.
#pragma once

#include <stdlib.h>
#include <string.h>

#include <cstdint>

#include "attr_cpu.h"
#include "simd_impl.h"

#ifndef TA_ISA_NS
#error "define TA_ISA_NS before including attr_common_impl.h"
#endif

namespace trustattr::cpu::TA_ISA_NS {
namespace {

// Everything here is compiled under a target pragma: no std:: template may be
// instantiated with non-local types (std::vector<double>, std::min<long>...),
// or the linker could hand this instruction set's copy to code that runs on
// any CPU. These helpers (internal linkage) replace them.
inline int64_t imin(int64_t a, int64_t b) { return a < b ? a : b; }
inline int64_t imax(int64_t a, int64_t b) { return a > b ? a : b; }

// An owned, 64-byte aligned array filled with `fill`.
template <typename T>
struct Buffer {
  T* data;
  Buffer(int64_t count, T fill) : data(scratch<T>(count)) {
    for (int64_t i = 0; i < count; ++i) data[i] = fill;
  }
  ~Buffer() { free(data); }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  T& operator[](int64_t i) { return data[i]; }
  const T& operator[](int64_t i) const { return data[i]; }
};

// ------------------------------------------------------------ micro-kernels

constexpr int kRowsMR = 6;  // rows per micro-kernel call

// Vectors per panel, so that 6 rows x kPanelVecs accumulators fit the register file
// with room for the panel's vectors: 6 x 4 = 24 of 32 registers (AVX-512, NEON),
// 6 x 2 = 12 of 16 (AVX2: BLIS's 6 x 16 floats; SSE2). A panel is at most 64
// columns, so one 64-bit word of signs covers it (rademacher_panel).
constexpr int kPanelVecs = kVecRegs >= 32 ? 4 : 2;

// Columns per panel: kPanelVecs SIMD vectors (64 floats / 32 doubles on AVX-512,
// 16 / 8 on AVX2, 8 / 4 on SSE2, 16 / 8 on NEON). No sum depends on it.
template <typename T>
constexpr int64_t wide_width() { return kPanelVecs * VecOf<T>::lanes; }

// C[r, 0:NV*L] += sum_{p < kc} A(p, r) * B[p*ldb + 0:NV*L] for r < MR (C row stride ldc).
// A(p, r) = a[r*sa + p] when RowsA (rows read in place, e.g. tokens of a sample),
// else a[p*sa + r] (e.g. a token's projected values, or g[t, o0 + r]).
template <typename T, int MR, int NV, bool RowsA>
void micro(int64_t kc, const T* __restrict a, int64_t sa, const T* __restrict b, int64_t ldb,
           T* __restrict c, int64_t ldc) {
  using V = typename VecOf<T>::type;
  constexpr int L = VecOf<T>::lanes;
  V acc[MR][NV];
  for (int r = 0; r < MR; ++r)
    for (int v = 0; v < NV; ++v) memcpy(&acc[r][v], c + r * ldc + v * L, sizeof(V));
  const T* rows[MR];
  for (int r = 0; r < MR; ++r) rows[r] = RowsA ? a + r * sa : a + r;
  for (int64_t p = 0; p < kc; ++p) {
    V bv[NV];
    for (int v = 0; v < NV; ++v) memcpy(&bv[v], b + p * ldb + v * L, sizeof(V));
    for (int r = 0; r < MR; ++r) {
      const T x = RowsA ? rows[r][p] : rows[r][p * sa];
      for (int v = 0; v < NV; ++v) acc[r][v] += x * bv[v];
    }
  }
  for (int r = 0; r < MR; ++r)
    for (int v = 0; v < NV; ++v) memcpy(c + r * ldc + v * L, &acc[r][v], sizeof(V));
}

template <typename T, int NV, bool RowsA>
void micro_mr(int mr, int64_t kc, const T* a, int64_t sa, const T* b, int64_t ldb, T* c, int64_t ldc) {
  switch (mr) {
    case 1: return micro<T, 1, NV, RowsA>(kc, a, sa, b, ldb, c, ldc);
    case 2: return micro<T, 2, NV, RowsA>(kc, a, sa, b, ldb, c, ldc);
    case 3: return micro<T, 3, NV, RowsA>(kc, a, sa, b, ldb, c, ldc);
    case 4: return micro<T, 4, NV, RowsA>(kc, a, sa, b, ldb, c, ldc);
    case 5: return micro<T, 5, NV, RowsA>(kc, a, sa, b, ldb, c, ldc);
    default: return micro<T, 6, NV, RowsA>(kc, a, sa, b, ldb, c, ldc);
  }
}

// One panel of `width` <= wide_width columns: the fewest vectors that cover it. B must be
// readable for those vectors; C is read and written for `width` columns only (through a
// temporary when width is not a whole number of vectors; values pass through exactly).
template <typename T, bool RowsA>
void micro_panel(int mr, int64_t kc, const T* a, int64_t sa, const T* b, int64_t ldb, T* c,
                 int64_t ldc, int64_t width) {
  constexpr int L = VecOf<T>::lanes;
  const int nv = static_cast<int>(ceil_div(width, L));
  T* dst = c;
  int64_t ld = ldc;
  alignas(64) T tmp[kRowsMR * kPanelVecs * L];
  if (width % L != 0) {
    for (int r = 0; r < mr; ++r)
      for (int64_t j = 0; j < nv * L; ++j) tmp[r * nv * L + j] = j < width ? c[r * ldc + j] : T(0);
    dst = tmp;
    ld = nv * L;
  }
  if (nv == kPanelVecs) {
    micro_mr<T, kPanelVecs, RowsA>(mr, kc, a, sa, b, ldb, dst, ld);
  } else if constexpr (kPanelVecs == 4) {
    if (nv == 1) micro_mr<T, 1, RowsA>(mr, kc, a, sa, b, ldb, dst, ld);
    else if (nv == 2) micro_mr<T, 2, RowsA>(mr, kc, a, sa, b, ldb, dst, ld);
    else micro_mr<T, 3, RowsA>(mr, kc, a, sa, b, ldb, dst, ld);
  } else {
    micro_mr<T, 1, RowsA>(mr, kc, a, sa, b, ldb, dst, ld);
  }
  if (dst == tmp)
    for (int r = 0; r < mr; ++r)
      for (int64_t j = 0; j < width; ++j) c[r * ldc + j] = tmp[r * ld + j];
}

// Unscaled rademacher signs of R[features, j0 : j0 + wide_width] for the row keys of
// kc features: bp[p * W + c] = +-1 (sketch_rng.h: bit j % 64 of word(d, j / 64)).
// j0 is a multiple of W and W divides 64, so one 64-bit word serves a whole panel.
// words[p] = word(rkeys[p], word) for p < kc: the signs of 64 columns of kc features.
inline void sign_words(const uint64_t* rkeys, int64_t kc, int64_t word, uint64_t* words) {
  for (int64_t p = 0; p < kc; ++p) words[p] = word_of(rkeys[p], word);
}

// words: sign_words(rkeys, kc, j0 >> 6) -- hashed once per 64 columns, shared by the
// 64 / W panels of that word (below 64-column panels the hash dominated the panel).
template <typename T>
void rademacher_panel(const uint64_t* words, int64_t kc, int64_t j0, T* bp) {
  using V = typename VecOf<T>::type;
  using B = typename VecOf<T>::bits;
  using Lane = typename VecOf<T>::lane_t;
  constexpr int L = VecOf<T>::lanes;
  constexpr int64_t W = wide_width<T>();
  constexpr int kSignShift = sizeof(Lane) * 8 - 1;
  constexpr Lane one = VecOf<T>::one_bits;
  constexpr uint64_t lane_mask = (1ULL << L) - 1;
  B lane;
  for (int i = 0; i < L; ++i) lane[i] = static_cast<Lane>(i);
  const int shift = static_cast<int>(j0 & 63);
  for (int64_t p = 0; p < kc; ++p) {
    const uint64_t w = words[p] >> shift;
    for (int v = 0; v < kPanelVecs; ++v) {
      const B bits = B{} + static_cast<Lane>((w >> (v * L)) & lane_mask);
      const B signs = ((bits >> lane) << kSignShift) | one;
      V out;
      memcpy(&out, &signs, sizeof(V));
      memcpy(bp + p * W + v * L, &out, sizeof(V));
    }
  }
}

// Rows [0, rows) split into ceil(rows / kRowsMR) nearly equal micro-kernel blocks.
struct RowBlocks {
  int64_t rows, count;
  explicit RowBlocks(int64_t r) : rows(r), count(ceil_div(r, kRowsMR)) {}
  int64_t begin(int64_t b) const { return b * rows / count; }
  int size(int64_t b) const { return static_cast<int>(begin(b + 1) - begin(b)); }
};

template <Elem E>
inline const void* elem_ptr(const void* base, int64_t offset) {
  return static_cast<const char*>(base) + offset * elem_size<E>();
}

template <Elem E, typename T>
constexpr bool is_native() {
  return (E == Elem::kF32 && sizeof(T) == 4) || (E == Elem::kF64 && sizeof(T) == 8);
}

inline int64_t round_up(int64_t a, int64_t b) { return ceil_div(a, b) * b; }

// dst[i] = element `offset + i` of src converted to T, i < count; 16 at a time for the
// common conversions (bf16 -> float is a shift, fp16 -> float uses F16C when compiled in).
template <Elem E, typename T>
void convert_run(const void* src, int64_t offset, int64_t count, T* dst) {
  int64_t i = 0;
  if constexpr (sizeof(T) == 4 && (E == Elem::kBF16 || E == Elem::kF16)) {
    typedef uint16_t H __attribute__((vector_size(32)));
    typedef uint32_t U __attribute__((vector_size(64)));
    typedef float F __attribute__((vector_size(64)));
    const uint16_t* s = static_cast<const uint16_t*>(src) + offset;
    for (; i + 16 <= count; i += 16) {
      H h;
      memcpy(&h, s + i, sizeof(H));
      F f;
      if constexpr (E == Elem::kBF16) {
        const U u = __builtin_convertvector(h, U) << 16;
        memcpy(&f, &u, sizeof(F));
      } else {
#if defined(__F16C__)
        typedef _Float16 HF __attribute__((vector_size(32)));
        HF hf;
        memcpy(&hf, &h, sizeof(HF));
        f = __builtin_convertvector(hf, F);
#else
        for (int l = 0; l < 16; ++l) f[l] = half_to_float(h[l]);
#endif
      }
      memcpy(dst + i, &f, sizeof(F));
    }
  }
  for (; i < count; ++i) dst[i] = load_elem<E, T>(src, offset + i);
}

// Converts `rows` rows of `count` contiguous elements (source row stride sr) into dst
// (row stride ld), zero-filling columns [count, ld).
template <Elem E, typename T>
void stage_rows(const void* src, int64_t sr, int64_t rows, int64_t count, T* dst, int64_t ld) {
  for (int64_t r = 0; r < rows; ++r) {
    T* d = dst + r * ld;
    convert_run<E, T>(src, r * sr, count, d);
    for (int64_t i = count; i < ld; ++i) d[i] = T(0);
  }
}

// Unscaled rademacher panels of R [d, k] (features 0..d-1): out[(panel*d + p)*W + c].
template <typename T>
T* rademacher_panels(int64_t seed, int64_t d, int64_t k) {
  constexpr int64_t W = wide_width<T>();
  const int64_t panels = ceil_div(k, W);
  T* out = scratch<T>(panels * d * W);
  uint64_t* rkeys = scratch<uint64_t>(d);
  const uint64_t key = seed_key(seed, SketchKind::kRademacher);
  for (int64_t p = 0; p < d; ++p) rkeys[p] = row_key(key, p);
  uint64_t* words = scratch<uint64_t>(d);
  for (int64_t panel = 0; panel < panels; ++panel) {
    if (panel == 0 || (panel * W) % 64 == 0) sign_words(rkeys, d, panel * W >> 6, words);
    rademacher_panel<T>(words, d, panel * W, out + panel * d * W);
  }
  free(words);
  free(rkeys);
  return out;
}

// Fn<element type E of the input, compute type T>::run(args), for every E.
template <template <Elem, typename> class Fn, typename T, typename Args>
void dispatch_train(Elem e, const Args& args) {
  switch (e) {
    case Elem::kF32: return Fn<Elem::kF32, T>::run(args);
    case Elem::kF64: return Fn<Elem::kF64, T>::run(args);
    case Elem::kBF16: return Fn<Elem::kBF16, T>::run(args);
    default: return Fn<Elem::kF16, T>::run(args);
  }
}

// Score ops compute in float64 when f64 is set, else in float32, whatever the train dtype.
template <template <Elem, typename> class Fn, typename Args>
void dispatch_score(Elem e, bool f64, const Args& args) {
  if (f64) return dispatch_train<Fn, double>(e, args);
  dispatch_train<Fn, float>(e, args);
}

// Compute in float64 for float64 input, else in float32 (the gradient sketches).
template <template <Elem, typename> class Fn, typename Args>
void dispatch_native(Elem e, const Args& args) {
  dispatch_score<Fn>(e, e == Elem::kF64, args);
}

}  // namespace
}  // namespace trustattr::cpu::TA_ISA_NS
