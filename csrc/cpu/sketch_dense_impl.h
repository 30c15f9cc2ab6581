// Dense sketch drivers (rademacher, gaussian): project as x @ R and project_t
// as y @ R^T, with R generated panel by panel (sketch_panels_impl.h). Part of
// sketch_cpu_impl.h (namespace TA_ISA_NS).
#pragma once

#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include <cstdint>

#include "sketch_panels_impl.h"

namespace trustattr::cpu::TA_ISA_NS {
namespace {

constexpr int64_t kDenseChunk = 256;  // features per generated panel
constexpr int64_t kColGroup = 128;    // output columns per group in dense_feature_groups
// Output columns per work item of dense_forward: every item packs its rows once per
// chunk of features, so wider items pack less often (with 128 columns the packing was
// ~19% of the AVX2 kernel at N=64, D=2^14, k=512): the widest of 1024, 512, ...,
// 128 that still leaves 4 items per thread. Only the work partition: no sum depends on it.
inline int64_t dense_item_cols(int64_t k, int64_t feature_groups, int nt) {
  int64_t cols = 1024;
  while (cols > kColGroup && ceil_div(k, cols) * feature_groups < 4 * static_cast<int64_t>(nt)) cols /= 2;
  return cols;
}

// Feature groups summed separately (then added in group order). A function of
// (d, k) only, so results never depend on the batch size or thread count.
inline int64_t dense_feature_groups(int64_t d, int64_t col_groups) {
  if (col_groups >= 16) return 1;
  int64_t g = ceil_div(16, col_groups);
  const int64_t cap = d / 2048 > 1 ? d / 2048 : 1;
  return g < cap ? g : cap;
}

// Per-thread buffers of the dense drivers: packed rows, one generated panel,
// the micro-kernel's output tile and `keys` row keys.
template <typename T>
struct DenseScratch {
  T* ap;
  T* bp;
  T* ct;
  uint64_t* rkeys;
  uint64_t* words;
  DenseScratch(int64_t rows, int64_t keys)
      : ap(scratch<T>(ceil_div(rows, kMaxMR) * kMaxMR * kDenseChunk * pack_copies<T>())),
        bp(scratch<T>(kDenseChunk * panel_width<T>())),
        ct(scratch<T>(kMaxMR * panel_width<T>())),
        rkeys(scratch<uint64_t>(keys)),
        words(scratch<uint64_t>(kDenseChunk)) {}
  ~DenseScratch() {
    free(ap);
    free(bp);
    free(ct);
    free(rkeys);
    free(words);
  }
  DenseScratch(const DenseScratch&) = delete;
  DenseScratch& operator=(const DenseScratch&) = delete;
};

// dst[r, 0:width] += (packed rows, kc features) x (panel bp) for rows r < rows,
// dst row stride ld; the micro-kernel row blocks of row_block_begin in row order.
template <typename T>
void add_panel_product(int64_t rows, int64_t kc, const DenseScratch<T>& s, T* dst, int64_t ld,
                       int64_t width) {
  constexpr int64_t NR = panel_width<T>();
  for (int64_t b = 0; b < row_block_count(rows); ++b) {
    const int64_t rb = row_block_begin(rows, b);
    const int mr = static_cast<int>(row_block_begin(rows, b + 1) - rb);
    if (width == NR) {  // a whole panel: the micro-kernel adds its tile into dst itself
      micro_dispatch<T>(mr, kc, s.ap + rb * kc * pack_copies<T>(), s.bp, s.ct, dst + rb * ld, ld);
      continue;
    }
    micro_dispatch<T>(mr, kc, s.ap + rb * kc * pack_copies<T>(), s.bp, s.ct, nullptr, 0);
    for (int r = 0; r < mr; ++r) {
      T* orow = dst + (rb + r) * ld;
      const T* crow = s.ct + r * NR;
      for (int64_t c = 0; c < width; ++c) orow[c] += crow[c];
    }
  }
}

// Forward: out [rows, k] = scale * x [rows, d] @ R. Work item = (column group of
// dense_item_cols columns, feature group); feature groups are summed in order at the end.
template <Elem E, typename T>
void dense_forward(const SketchArgs& a, const void* x, int64_t rows, T* out) {
  constexpr int64_t NR = panel_width<T>();
  const int64_t d = a.d, k = a.k;
  const int64_t col_blocks = ceil_div(k, NR);
  const int64_t groups = dense_feature_groups(d, ceil_div(k, kColGroup));
  const int64_t blocks_per_group = dense_item_cols(k, groups, a.num_threads) / NR;
  const int64_t col_groups = ceil_div(col_blocks, blocks_per_group);
  const int64_t count = rows * k;
  T* partial = scratch<T>(groups * count);
  memset(partial, 0, sizeof(T) * groups * count);
  const uint64_t key = a.key;
  const int nt = a.num_threads;

#pragma omp parallel num_threads(nt)
  {
    const DenseScratch<T> s(rows, kDenseChunk);
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
        pack_rows<E, T>(x, a.stride_row, a.stride_col, rows, f0, kc, s.ap);
        for (int64_t p = 0; p < kc; ++p) s.rkeys[p] = row_key(key, a.feature_offset + f0 + p);
        for (int64_t cb = cb_begin; cb < cb_end; ++cb) {
          const int64_t j0 = cb * NR;
          panel_forward<T>(a.kind, s.rkeys, kc, j0, a.table, s.bp, s.words);
          add_panel_product<T>(rows, kc, s, dst + j0, k, k - j0 < NR ? k - j0 : NR);
        }
      }
    }
  }
  reduce_groups<T>(partial, groups, count, static_cast<T>(a.scale), out, nt);
  free(partial);
}

// Transposed: out [rows, d] = scale * y [rows, k] @ R^T. Work item = 4 blocks of
// NR features; the reduction over k runs in chunks, in order, inside the item.
template <Elem E, typename T>
void dense_transposed(const SketchArgs& a, const void* y, int64_t rows, T* out) {
  constexpr int64_t NR = panel_width<T>();
  const int64_t d = a.d, k = a.k;
  const int64_t feat_blocks = ceil_div(d, NR);
  const int64_t blocks_per_item = 4;
  const int64_t items = ceil_div(feat_blocks, blocks_per_item);
  const uint64_t key = a.key;
  const int nt = a.num_threads;
  memset(out, 0, sizeof(T) * rows * d);

#pragma omp parallel num_threads(nt)
  {
    const DenseScratch<T> s(rows, blocks_per_item * NR);
#pragma omp for schedule(dynamic, 1)
    for (int64_t item = 0; item < items; ++item) {
      const int64_t fb_begin = item * blocks_per_item;
      const int64_t fb_end = fb_begin + blocks_per_item < feat_blocks ? fb_begin + blocks_per_item
                                                                      : feat_blocks;
      for (int64_t fb = fb_begin; fb < fb_end; ++fb)
        for (int64_t c = 0; c < NR; ++c)
          s.rkeys[(fb - fb_begin) * NR + c] = row_key(key, a.feature_offset + fb * NR + c);
      for (int64_t j0 = 0; j0 < k; j0 += kDenseChunk) {
        const int64_t kc = k - j0 < kDenseChunk ? k - j0 : kDenseChunk;
        pack_rows<E, T>(y, a.stride_row, a.stride_col, rows, j0, kc, s.ap);
        for (int64_t fb = fb_begin; fb < fb_end; ++fb) {
          const int64_t f0 = fb * NR;
          panel_transposed<T>(a.kind, s.rkeys + (fb - fb_begin) * NR, kc, j0, a.table, s.bp);
          add_panel_product<T>(rows, kc, s, out + f0, d, d - f0 < NR ? d - f0 : NR);
        }
      }
    }
  }
  scale_in_place<T>(out, rows * d, static_cast<T>(a.scale), nt);
}

}  // namespace
}  // namespace trustattr::cpu::TA_ISA_NS
