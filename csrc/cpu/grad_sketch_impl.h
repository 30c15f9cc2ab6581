// CPU kernels of project_factored and project_outer: sketches of a linear
// layer's per-sample gradient G_n = sum_t g[n,t] a[n,t]^T ([d_out, d_in]) that
// never form G_n. Included (after sketch_cpu_impl.h, whose panel generator,
// packing and helpers they reuse) by the attr_isa_*.cpp files only, once per
// instruction set; everything lives in namespace TA_ISA_NS.
//
// Building block: micro_acc<MR>, a register-blocked GEMM micro-kernel that
// ACCUMULATES into C in memory: C[r, c] += sum_p A[p*lda + r] * B[p*ldb + c]
// for MR rows and NR = two SIMD vectors of columns. Loading C, running the
// FMA chain and storing C back is bit-identical to one longer chain, so every
// output entry below is ONE sequential chain of fused multiply-adds over its
// whole reduction (tokens, then features, in order). Results therefore never
// depend on the batch size, the thread count, or any tile or chunk size here.
//
// project_factored (LoGra / Kronecker sketch), per call:
//   0. R_in [d_in, k_in] and R_out [d_out, k_out] (rademacher +-1, unscaled;
//      seeds derive_seed(seed, 0) and derive_seed(seed, 1), feature offset 0)
//      are generated once into panel layout [panel][d][NR] (a few hundred KB,
//      stays in L2) and shared by every sample.
//   1. Per slab of samples (slab sized so its projected tokens fit ~8 MB):
//      work item = (sample, factor a|g, block of 48 tokens): pack the tokens
//      (any input dtype -> float/double) 12 rows at a time, chunk of 256
//      features, and run micro_acc against the R panels:
//        GA[n, t, :] = sum_i a[n,t,i] R_in[i, :]     (chain over i)
//        GG[n, t, :] = sum_o g[n,t,o] R_out[o, :]    (chain over o)
//   2. Work item = (block of <= 12 rows o of the k_out x k_in result, panel
//      of NR columns i): for every sample n of the slab in increasing order,
//        acc[seg(n), o, i] += sum_t GG[n, t, o] GA[n, t, i]   (chain over t)
//      with seg(n) = segments[n] (or n). Samples of one segment continue the
//      same chain, exactly as if their tokens were concatenated.
//   3. out = acc * 1/sqrt(k_in k_out);  out[r, o*k_in + i].
//   Cost: 2 N T k (d_in + d_out) + 2 N T k_out k_in FLOPs; a and g read once.
//
// project_outer (exact dense JL of vec(G_n), rademacher, = project(G.flatten(1),
// k, seed, feature_offset=...) up to rounding), per slab of <= 48 output rows:
//   for each block of OB rows o of G (OB*d_in ~ 4096 features, "the tile"):
//     A. work item = (output row u, <= 12 rows o): for each input row n of u
//        (ascending), chunk of tokens: micro_acc with A = g[n, t, o] (lda =
//        token stride), B = a[n, t, i0:i0+NR]:
//          tile[u, (o-o0)*d_in + i] += sum_t g[n,t,o] a[n,t,i]    (chain over n, t)
//        Inputs that are not float/double, or a ragged last panel of d_in,
//        are staged (converted, zero-padded) one token chunk at a time.
//     B. work item = group of 256 output columns: for each chunk of 256 tile
//        features, pack the tile rows, generate the random panel of each NR
//        columns (panel_forward: feature index feature_offset + o*d_in + i,
//        exactly project's matrix), and micro_acc into acc[u, j] (chain over
//        all features in order).
//   then out = acc / sqrt(k). Extra memory: the tile (48 x ~4096 values) and
//   per-thread packing buffers -- never N x d_out x d_in.
#pragma once

#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include <cstdint>

#include "attr_cpu.h"

#ifndef TA_ISA_NS
#error "define TA_ISA_NS before including grad_sketch_impl.h"
#endif

namespace trustattr::cpu::TA_ISA_NS {
namespace {

constexpr int64_t kTokenBlock = 48;              // tokens per phase-1 item (4 row blocks of 12)
constexpr int64_t kFactorSlabBytes = 8 << 20;    // projected tokens kept per slab of samples
constexpr int64_t kTileFeatures = 4096;          // features (o, i) per tile row (project_outer)
constexpr int64_t kOuterSlab = 48;               // output rows per slab (project_outer)
constexpr int64_t kOuterColGroup = 256;          // output columns per projection item
constexpr int64_t kStageElems = 1 << 15;         // elements per staged token chunk

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

// ------------------------------------------------------------ micro-kernel

// C[r, 0:NR] += sum_{p < kc} A[p*lda + r] * B[p*ldb + 0:NR], r < MR; C row stride ldc.
template <typename T, int MR>
void micro_acc(int64_t kc, const T* __restrict ap, int64_t lda, const T* __restrict bp,
               int64_t ldb, T* __restrict c, int64_t ldc) {
  using V = typename VecOf<T>::type;
  constexpr int L = VecOf<T>::lanes;
  V c0[MR], c1[MR];
  for (int r = 0; r < MR; ++r) {
    memcpy(&c0[r], c + r * ldc, sizeof(V));
    memcpy(&c1[r], c + r * ldc + L, sizeof(V));
  }
  for (int64_t p = 0; p < kc; ++p) {
    V b0, b1;
    memcpy(&b0, bp + p * ldb, sizeof(V));
    memcpy(&b1, bp + p * ldb + L, sizeof(V));
    const T* a = ap + p * lda;
    for (int r = 0; r < MR; ++r) {
      c0[r] += a[r] * b0;
      c1[r] += a[r] * b1;
    }
  }
  for (int r = 0; r < MR; ++r) {
    memcpy(c + r * ldc, &c0[r], sizeof(V));
    memcpy(c + r * ldc + L, &c1[r], sizeof(V));
  }
}

template <typename T>
void micro_acc_rows(int mr, int64_t kc, const T* ap, int64_t lda, const T* bp, int64_t ldb, T* c,
                    int64_t ldc) {
  switch (mr) {
    case 1: return micro_acc<T, 1>(kc, ap, lda, bp, ldb, c, ldc);
    case 2: return micro_acc<T, 2>(kc, ap, lda, bp, ldb, c, ldc);
    case 3: return micro_acc<T, 3>(kc, ap, lda, bp, ldb, c, ldc);
    case 4: return micro_acc<T, 4>(kc, ap, lda, bp, ldb, c, ldc);
    case 5: return micro_acc<T, 5>(kc, ap, lda, bp, ldb, c, ldc);
    case 6: return micro_acc<T, 6>(kc, ap, lda, bp, ldb, c, ldc);
    case 7: return micro_acc<T, 7>(kc, ap, lda, bp, ldb, c, ldc);
    case 8: return micro_acc<T, 8>(kc, ap, lda, bp, ldb, c, ldc);
    case 9: return micro_acc<T, 9>(kc, ap, lda, bp, ldb, c, ldc);
    case 10: return micro_acc<T, 10>(kc, ap, lda, bp, ldb, c, ldc);
    case 11: return micro_acc<T, 11>(kc, ap, lda, bp, ldb, c, ldc);
    default: return micro_acc<T, 12>(kc, ap, lda, bp, ldb, c, ldc);
  }
}

// micro_acc for C blocks narrower than NR (width <= NR columns are read and
// written; B must still be readable for NR columns). Values are preserved
// exactly through the temporary.
template <typename T>
void micro_acc_any(int mr, int64_t kc, const T* ap, int64_t lda, const T* bp, int64_t ldb, T* c,
                   int64_t ldc, int64_t width) {
  constexpr int64_t NR = panel_width<T>();
  if (width == NR) return micro_acc_rows<T>(mr, kc, ap, lda, bp, ldb, c, ldc);
  alignas(64) T tmp[kMaxMR * NR];
  for (int r = 0; r < mr; ++r)
    for (int64_t j = 0; j < NR; ++j) tmp[r * NR + j] = j < width ? c[r * ldc + j] : T(0);
  micro_acc_rows<T>(mr, kc, ap, lda, bp, ldb, tmp, NR);
  for (int r = 0; r < mr; ++r)
    for (int64_t j = 0; j < width; ++j) c[r * ldc + j] = tmp[r * NR + j];
}

// Rows [0, rows) split into ceil(rows / kMaxMR) nearly equal micro-kernel blocks.
struct RowBlocks {
  int64_t rows, count;
  RowBlocks(int64_t r) : rows(r), count(ceil_div(r, kMaxMR)) {}
  int64_t begin(int64_t b) const { return b * rows / count; }
  int size(int64_t b) const { return static_cast<int>(begin(b + 1) - begin(b)); }
};

template <Elem E>
inline const void* elem_ptr(const void* base, int64_t offset) {
  return static_cast<const char*>(base) + offset * elem_size<E>();
}

// The element type that T itself is (for packing already-converted buffers).
template <typename T>
constexpr Elem native_elem() { return sizeof(T) == 8 ? Elem::kF64 : Elem::kF32; }

template <Elem E, typename T>
constexpr bool is_native() { return E == native_elem<T>(); }

// Converts rows x rows of `count` contiguous elements (source row stride sr)
// into dst (row stride ld), zero-filling columns [count, ld).
template <Elem E, typename T>
void stage_rows(const void* src, int64_t sr, int64_t rows, int64_t count, T* dst, int64_t ld) {
  for (int64_t r = 0; r < rows; ++r) {
    T* d = dst + r * ld;
    for (int64_t i = 0; i < count; ++i) d[i] = load_elem<E, T>(src, r * sr + i);
    for (int64_t i = count; i < ld; ++i) d[i] = T(0);
  }
}

// Unscaled rademacher panels of R [d, k] for features 0..d-1: out[(panel*d + p)*NR + c].
template <typename T>
T* rademacher_panels(int64_t seed, int64_t d, int64_t k) {
  constexpr int64_t NR = panel_width<T>();
  const int64_t panels = ceil_div(k, NR);
  T* out = scratch<T>(panels * d * NR);
  uint64_t* rkeys = scratch<uint64_t>(d);
  const uint64_t key = seed_key(seed, SketchKind::kRademacher);
  for (int64_t p = 0; p < d; ++p) rkeys[p] = row_key(key, p);
  for (int64_t panel = 0; panel < panels; ++panel)
    panel_forward<T>(SketchKind::kRademacher, rkeys, d, panel * NR, nullptr, out + panel * d * NR);
  free(rkeys);
  return out;
}

// ---------------------------------------------------------- project_factored

// One factor's token projections for tokens [t0, t0 + tb) of sample n:
// C[t, :] = sum_f x[n, t, f] R[f, :], C zeroed here (row stride ldc).
template <Elem E, typename T>
void project_tokens(const void* x, int64_t sn, int64_t st, int64_t n, int64_t t0, int64_t tb,
                    int64_t d, int64_t k, const T* panels, T* ap, T* c, int64_t ldc) {
  constexpr int64_t NR = panel_width<T>();
  memset(c, 0, sizeof(T) * tb * ldc);
  const void* base = elem_ptr<E>(x, n * sn + t0 * st);
  const RowBlocks blocks(tb);
  for (int64_t f0 = 0; f0 < d; f0 += kDenseChunk) {
    const int64_t kc = d - f0 < kDenseChunk ? d - f0 : kDenseChunk;
    for (int64_t b = 0; b < blocks.count; ++b)
      pack_rows<E, T>(elem_ptr<E>(base, blocks.begin(b) * st), st, 1, blocks.size(b), f0, kc,
                      ap + blocks.begin(b) * kc);
    for (int64_t b = 0; b < blocks.count; ++b)
      for (int64_t j0 = 0; j0 < k; j0 += NR)
        micro_acc_rows<T>(blocks.size(b), kc, ap + blocks.begin(b) * kc, blocks.size(b),
                          panels + (j0 / NR * d + f0) * NR, NR, c + blocks.begin(b) * ldc + j0, ldc);
  }
}

template <Elem E, typename T>
void factored_typed(const FactoredArgs& a) {
  constexpr int64_t NR = panel_width<T>();
  const GradFactors& in = a.in;
  const int64_t k_in = a.k_in, k_out = a.k_out, T_ = in.t, width = k_out * k_in;
  const int64_t ld_in = ceil_div(k_in, NR) * NR, ld_out = ceil_div(k_out, NR) * NR;
  T* out = static_cast<T*>(a.out);
  memset(out, 0, sizeof(T) * in.rows_out * width);
  const int nt = a.num_threads;
  if (T_ > 0) {
    T* r_in = rademacher_panels<T>(a.seed_in, in.d_in, k_in);
    T* r_out = rademacher_panels<T>(a.seed_out, in.d_out, k_out);
    const int64_t per_sample = T_ * (ld_in + ld_out) * static_cast<int64_t>(sizeof(T));
    int64_t slab = kFactorSlabBytes / per_sample;
    slab = slab < 1 ? 1 : (slab > in.n ? in.n : slab);
    T* ga = scratch<T>(slab * T_ * ld_in);   // [slab, T, ld_in]
    T* gg = scratch<T>(slab * T_ * ld_out);  // [slab, T, ld_out]
    const int64_t token_blocks = ceil_div(T_, kTokenBlock);
    const RowBlocks o_blocks(k_out);
    const int64_t i_panels = ceil_div(k_in, NR);

#pragma omp parallel num_threads(nt)
    {
      T* ap = scratch<T>(kTokenBlock * kDenseChunk);
      for (int64_t n0 = 0; n0 < in.n; n0 += slab) {
        const int64_t sb = in.n - n0 < slab ? in.n - n0 : slab;
#pragma omp for schedule(dynamic, 1)
        for (int64_t item = 0; item < sb * 2 * token_blocks; ++item) {
          const int64_t s = item / (2 * token_blocks), which = (item / token_blocks) % 2;
          const int64_t t0 = (item % token_blocks) * kTokenBlock;
          const int64_t tb = T_ - t0 < kTokenBlock ? T_ - t0 : kTokenBlock;
          if (which == 0)
            project_tokens<E, T>(in.a, in.a_stride_n, in.a_stride_t, n0 + s, t0, tb, in.d_in, k_in,
                                 r_in, ap, ga + (s * T_ + t0) * ld_in, ld_in);
          else
            project_tokens<E, T>(in.g, in.g_stride_n, in.g_stride_t, n0 + s, t0, tb, in.d_out,
                                 k_out, r_out, ap, gg + (s * T_ + t0) * ld_out, ld_out);
        }
#pragma omp for schedule(dynamic, 1)
        for (int64_t item = 0; item < o_blocks.count * i_panels; ++item) {
          const int64_t ob = item / i_panels, i0 = (item % i_panels) * NR;
          const int64_t o0 = o_blocks.begin(ob);
          const int mr = o_blocks.size(ob);
          const int64_t w = k_in - i0 < NR ? k_in - i0 : NR;
          for (int64_t s = 0; s < sb; ++s) {
            const int64_t row = in.segments != nullptr ? in.segments[n0 + s] : n0 + s;
            micro_acc_any<T>(mr, T_, gg + s * T_ * ld_out + o0, ld_out, ga + s * T_ * ld_in + i0,
                             ld_in, out + row * width + o0 * k_in + i0, k_in, w);
          }
        }
      }
      free(ap);
    }
    free(r_in);
    free(r_out);
    free(ga);
    free(gg);
  }
  scale_in_place<T>(out, in.rows_out * width, static_cast<T>(a.scale), nt);
}

// ------------------------------------------------------------- project_outer

// Input rows of every output row, ascending: rows of u are order[start[u] .. start[u+1]).
struct Members {
  Buffer<int64_t> start, order;
  Members(const GradFactors& in) : start(in.rows_out + 1, 0), order(in.n, 0) {
    for (int64_t n = 0; n < in.n; ++n) ++start[(in.segments ? in.segments[n] : n) + 1];
    for (int64_t u = 0; u < in.rows_out; ++u) start[u + 1] += start[u];
    Buffer<int64_t> cursor(in.rows_out + 1, 0);
    for (int64_t u = 0; u < in.rows_out; ++u) cursor[u] = start[u];
    for (int64_t n = 0; n < in.n; ++n) order[cursor[in.segments ? in.segments[n] : n]++] = n;
  }
};

// tile[(o - o_first) * d_in + i] += sum_t g[n, t, o] a[n, t, i] for mr rows o from o_first,
// all i, all tokens of input row n (tile row stride d_in).
template <Elem E, typename T>
void accumulate_outer(const GradFactors& in, int64_t n, int64_t o_first, int mr, T* tile,
                      T* stage_a, T* stage_g) {
  constexpr int64_t NR = panel_width<T>();
  const int64_t d_in = in.d_in, ld_a = ceil_div(d_in, NR) * NR;
  const bool native = is_native<E, T>();
  const int64_t chunk = native ? kStageElems / NR : (kStageElems / ld_a > 0 ? kStageElems / ld_a : 1);
  const int64_t full = native ? d_in / NR * NR : 0;  // panels read straight from a
  for (int64_t t0 = 0; t0 < in.t; t0 += chunk) {
    const int64_t tc = in.t - t0 < chunk ? in.t - t0 : chunk;
    const void* a_rows = elem_ptr<E>(in.a, n * in.a_stride_n + t0 * in.a_stride_t);
    const void* g_rows = elem_ptr<E>(in.g, n * in.g_stride_n + t0 * in.g_stride_t + o_first);
    const T* ga;
    int64_t lda;
    if (native) {
      ga = static_cast<const T*>(g_rows);
      lda = in.g_stride_t;
    } else {
      stage_rows<E, T>(g_rows, in.g_stride_t, tc, mr, stage_g, kMaxMR);
      ga = stage_g;
      lda = kMaxMR;
    }
    for (int64_t i0 = 0; i0 < full; i0 += NR)
      micro_acc_rows<T>(mr, tc, ga, lda, static_cast<const T*>(a_rows) + i0, in.a_stride_t,
                        tile + i0, d_in);
    if (full < d_in) {  // converted input, or the ragged last panel: stage a's columns [full, d_in)
      const int64_t cols = d_in - full, ld = ceil_div(cols, NR) * NR;
      stage_rows<E, T>(elem_ptr<E>(a_rows, full), in.a_stride_t, tc, cols, stage_a, ld);
      for (int64_t i0 = full; i0 < d_in; i0 += NR)
        micro_acc_any<T>(mr, tc, ga, lda, stage_a + (i0 - full), ld, tile + i0, d_in,
                         d_in - i0 < NR ? d_in - i0 : NR);
    }
  }
}

template <Elem E, typename T>
void outer_typed(const OuterArgs& a) {
  constexpr int64_t NR = panel_width<T>();
  constexpr Elem EN = native_elem<T>();
  const GradFactors& in = a.in;
  const int64_t d_in = in.d_in, d_out = in.d_out, k = a.k;
  T* out = static_cast<T*>(a.out);
  memset(out, 0, sizeof(T) * in.rows_out * k);
  const int nt = a.num_threads;
  const Members members(in);
  int64_t ob_max = kTileFeatures / d_in;
  ob_max = ob_max < 1 ? 1 : (ob_max > d_out ? d_out : ob_max);
  const int64_t tile_ld = ob_max * d_in;  // tile row stride
  const int64_t slab_max = in.rows_out < kOuterSlab ? in.rows_out : kOuterSlab;
  T* tile = scratch<T>(slab_max * tile_ld);
  const int64_t col_groups = ceil_div(k, kOuterColGroup);
  const uint64_t key = seed_key(a.seed, SketchKind::kRademacher);
  const int64_t ld_a = ceil_div(d_in, NR) * NR;
  const int64_t stage_tokens = kStageElems / ld_a > 0 ? kStageElems / ld_a : 1;

#pragma omp parallel num_threads(nt)
  {
    T* ap = scratch<T>(ceil_div(slab_max, kMaxMR) * kMaxMR * kDenseChunk);
    T* bp = scratch<T>(kDenseChunk * NR);
    uint64_t* rkeys = scratch<uint64_t>(kDenseChunk);
    T* stage_a = scratch<T>(kStageElems > stage_tokens * ld_a ? kStageElems : stage_tokens * ld_a);
    T* stage_g = scratch<T>(kStageElems * kMaxMR);
    for (int64_t u0 = 0; u0 < in.rows_out; u0 += kOuterSlab) {
      const int64_t su = in.rows_out - u0 < kOuterSlab ? in.rows_out - u0 : kOuterSlab;
      const RowBlocks row_blocks(su);
      for (int64_t o0 = 0; o0 < d_out; o0 += ob_max) {
        const int64_t ob = d_out - o0 < ob_max ? d_out - o0 : ob_max;
        const RowBlocks o_blocks(ob);
        // A: the tile of G for rows o0 .. o0 + ob of every output row of the slab.
#pragma omp for schedule(dynamic, 1)
        for (int64_t item = 0; item < su * o_blocks.count; ++item) {
          const int64_t u = item / o_blocks.count, b = item % o_blocks.count;
          T* dst = tile + u * tile_ld + o_blocks.begin(b) * d_in;
          memset(dst, 0, sizeof(T) * o_blocks.size(b) * d_in);
          for (int64_t m = members.start[u0 + u]; m < members.start[u0 + u + 1]; ++m)
            accumulate_outer<E, T>(in, members.order[m], o0 + o_blocks.begin(b), o_blocks.size(b),
                                   dst, stage_a, stage_g);
        }
        // B: project the tile's features onto every output column.
        const int64_t features = ob * d_in;
#pragma omp for schedule(dynamic, 1)
        for (int64_t cg = 0; cg < col_groups; ++cg) {
          const int64_t j_end = (cg + 1) * kOuterColGroup < k ? (cg + 1) * kOuterColGroup : k;
          for (int64_t f0 = 0; f0 < features; f0 += kDenseChunk) {
            const int64_t kc = features - f0 < kDenseChunk ? features - f0 : kDenseChunk;
            for (int64_t b = 0; b < row_blocks.count; ++b)
              pack_rows<EN, T>(tile + row_blocks.begin(b) * tile_ld, tile_ld, 1, row_blocks.size(b),
                               f0, kc, ap + row_blocks.begin(b) * kc);
            for (int64_t p = 0; p < kc; ++p)
              rkeys[p] = row_key(key, a.feature_offset + o0 * d_in + f0 + p);
            for (int64_t j0 = cg * kOuterColGroup; j0 < j_end; j0 += NR) {
              panel_forward<T>(SketchKind::kRademacher, rkeys, kc, j0, nullptr, bp);
              for (int64_t b = 0; b < row_blocks.count; ++b)
                micro_acc_any<T>(row_blocks.size(b), kc, ap + row_blocks.begin(b) * kc,
                                 row_blocks.size(b), bp, NR, out + (u0 + row_blocks.begin(b)) * k + j0,
                                 k, k - j0 < NR ? k - j0 : NR);
            }
          }
        }
      }
    }
    free(ap);
    free(bp);
    free(rkeys);
    free(stage_a);
    free(stage_g);
  }
  free(tile);
  scale_in_place<T>(out, in.rows_out * k, static_cast<T>(a.scale), nt);
}

template <template <Elem, typename> class Fn, typename Args>
void dispatch_elem(Elem e, const Args& args) {
  switch (e) {
    case Elem::kF32: return Fn<Elem::kF32, float>::run(args);
    case Elem::kF64: return Fn<Elem::kF64, double>::run(args);
    case Elem::kBF16: return Fn<Elem::kBF16, float>::run(args);
    default: return Fn<Elem::kF16, float>::run(args);
  }
}

template <Elem E, typename T>
struct FactoredFn {
  static void run(const FactoredArgs& a) { factored_typed<E, T>(a); }
};
template <Elem E, typename T>
struct OuterFn {
  static void run(const OuterArgs& a) { outer_typed<E, T>(a); }
};

}  // namespace

void project_factored(const FactoredArgs& a) { dispatch_elem<FactoredFn>(a.in.elem, a); }
void project_outer(const OuterArgs& a) { dispatch_elem<OuterFn>(a.in.elem, a); }

}  // namespace trustattr::cpu::TA_ISA_NS
