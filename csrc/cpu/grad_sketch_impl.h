// CPU kernels of project_factored and project_outer: sketches of a linear
// layer's per-sample gradient G_n = sum_t g[n,t] a[n,t]^T ([d_out, d_in]) that
// never form G_n. Included (with attr_common_impl.h and simd_impl.h, whose
// helpers they reuse) by the attr_isa_*.cpp files only, once per instruction
// set; everything lives in namespace TA_ISA_NS.
//
// Building block: micro<MR, NV>, a register-blocked GEMM micro-kernel that
// ACCUMULATES into C in memory: C[r, c] += sum_p A(p, r) * B[p*ldb + c] for
// MR <= 6 rows and NV <= kPanelVecs SIMD vectors of columns (a "panel" of W
// columns: 64 floats / 32 doubles on AVX-512, 16 / 8 on AVX2, attr_common_impl.h). A(p, r) is read in place, either as rows
// (a[r*sa + p]: tokens of a sample, rows of a tile) or as columns (a[p*sa + r]:
// g[t, o0 + r], or a token's projected values). Loading C, running the FMA chain
// and storing C back is bit-identical to one longer chain, so EVERY OUTPUT
// ENTRY BELOW IS ONE SEQUENTIAL CHAIN OF FMAs over its whole reduction, in a
// fixed order. Results never depend on the batch size, the thread count, or any
// tile/chunk size; the AVX-512 and AVX2 builds agree bit for bit (the baseline
// build has no FMA and differs by rounding). A CUDA port that keeps each
// output's chain order sequential reproduces them too.
//
// Random matrices: rademacher, unscaled +-1 while accumulating, the scale applied
// once at the end. Entry (f, j) = sign bit j % 64 of word(row_key(f), j / 64)
// (sketch_rng.h); a panel (at most 64 columns) lies within one 64-bit word.
//
// project_factored (LoGra / Kronecker sketch), per call:
//   0. R_in [d_in, k_in] (seed derive_seed(seed, 0)) and R_out [d_out, k_out]
//      (derive_seed(seed, 1)), feature offset 0, are generated once in panel
//      layout [panel][f][W] and shared by all samples (L2-resident).
//   1. Per slab of samples (sized so their projected tokens fit ~8 MB), work
//      item = (sample n, factor a|g, block of 48 tokens); for each chunk of 1024
//      features, each block of <= 6 tokens (read in place; bf16/fp16 rows are
//      converted into a small buffer first) and each panel:
//        GA[n, t, j] = sum_f a[n,t,f] R_in[f, j]      (chain over f = 0..d_in-1)
//        GG[n, t, j] = sum_f g[n,t,f] R_out[f, j]     (chain over f = 0..d_out-1)
//   2. Work item = (block of <= 6 rows o, panel of columns i); for every sample
//      n of the slab in increasing order (slabs in order):
//        acc[seg(n), o, i] += sum_t GG[n, t, o] GA[n, t, i]  (chain over t)
//      seg(n) = segments[n], or n. Rows of one segment continue the same chain,
//      exactly as if their tokens were concatenated in row order.
//   3. out[r, o*k_in + i] = acc[r, o, i] / sqrt(k_in k_out).
//   Cost: 2 N T (d_in k_in + d_out k_out) + 2 N T k_out k_in FLOPs; a and g are
//   read once; extra memory: the slab's GA/GG (<= ~8 MB) and the R panels.
//
// project_outer (exact dense JL of vec(G_n), rademacher, = project(G.flatten(1),
// k, seed, feature_offset) up to rounding; feature of G[o, i] is o*d_in + i):
//   Threads form a fixed grid of row teams x column teams (outer_grid: the grid
//   with the least repeated work); a thread owns output rows [u_lo, u_hi) and
//   column panels [p_lo, p_hi) and never synchronizes until the end. For each
//   slab of <= 48 of its output rows and each block of OB rows o of G
//   (OB*d_in ~ 6144 features, OB a multiple of 6 when possible):
//     A. the tile: for each output row u, each block of <= 6 rows o, each input
//        row n of u (ascending), each chunk of tokens:
//          tile[u, (o-o0)*d_in + i] += sum_t g[n,t,o] a[n,t,i]   (chain over n, t)
//        micro with A(p=t, r=o) = g[n, t, o] in place and B = a[n, t, i0 : i0+W]
//        in place (a ragged last panel of d_in, or bf16/fp16 inputs, staged).
//     B. for each chunk of proj_chunk (128 on AVX-512) tile features: row keys of the absolute features
//        feature_offset + o0*d_in + f; for each owned panel: generate the W-column
//        sign panel [chunk][W] (rademacher_panel), then for each block of <= 6 tile
//        rows (read in place): acc[u, j] += sum_f tile[u, f] R[f, j]
//        (chain over all features of G in order: o, then i).
//   then out = acc / sqrt(k). Extra memory: one tile per thread (<= 48 x ~6144
//   values) and a 32 KiB sign panel -- never N x d_out x d_in.
#pragma once

#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include <cstdint>

#include "attr_common_impl.h"

#ifndef TA_ISA_NS
#error "define TA_ISA_NS before including grad_sketch_impl.h"
#endif

namespace trustattr::cpu::TA_ISA_NS {
namespace {

constexpr int64_t kTokenBlock = 48;              // tokens per phase-1 item (8 row blocks of 6)
constexpr int64_t kFactorSlabBytes = 8 << 20;    // projected tokens kept per slab of samples
constexpr int64_t kTileFeatures = 6144;          // features (o, i) per tile row (project_outer)
constexpr int64_t kOuterSlab = 48;               // output rows per slab (project_outer)
constexpr int64_t kStageElems = 1 << 15;         // elements per staged token chunk

// ---------------------------------------------------------- project_factored

constexpr int64_t kFeatureChunk = 1024;  // features per pass (keeps the R panel chunk in L2)

// One factor's token projections for tokens [t0, t0 + tb) of sample n:
// C[t, :] = sum_f x[n, t, f] R[f, :] over whole vectors of k (C zeroed here, row stride ldc).
template <Elem E, typename T>
void project_tokens(const void* x, int64_t sn, int64_t st, int64_t n, int64_t t0, int64_t tb,
                    int64_t d, int64_t k, const T* panels, T* stage, T* c, int64_t ldc) {
  constexpr int64_t W = wide_width<T>();
  constexpr int64_t L = VecOf<T>::lanes;
  memset(c, 0, sizeof(T) * tb * ldc);
  const void* base = elem_ptr<E>(x, n * sn + t0 * st);
  const RowBlocks blocks(tb);
  for (int64_t f0 = 0; f0 < d; f0 += kFeatureChunk) {
    const int64_t kc = d - f0 < kFeatureChunk ? d - f0 : kFeatureChunk;
    for (int64_t b = 0; b < blocks.count; ++b) {
      const T* rows;
      int64_t stride;
      if (is_native<E, T>()) {
        rows = static_cast<const T*>(base) + blocks.begin(b) * st + f0;
        stride = st;
      } else {
        stage_rows<E, T>(elem_ptr<E>(base, blocks.begin(b) * st + f0), st, blocks.size(b), kc, stage, kc);
        rows = stage;
        stride = kc;
      }
      for (int64_t j0 = 0; j0 < k; j0 += W)
        micro_panel<T, true>(blocks.size(b), kc, rows, stride, panels + (j0 / W * d + f0) * W, W,
                             c + blocks.begin(b) * ldc + j0, ldc, imin(W, round_up(k - j0, L)));
    }
  }
}

template <Elem E, typename T>
void factored_typed(const FactoredArgs& a) {
  constexpr int64_t W = wide_width<T>();
  const GradFactors& in = a.in;
  const int64_t k_in = a.k_in, k_out = a.k_out, T_ = in.t, width = k_out * k_in;
  const int64_t ld_in = round_up(k_in, W), ld_out = round_up(k_out, W);
  T* out = static_cast<T*>(a.out);
  memset(out, 0, sizeof(T) * in.rows_out * width);
  const int nt = a.num_threads;
  if (T_ > 0) {
    T* r_in = rademacher_panels<T>(a.seed_in, in.d_in, k_in);
    T* r_out = rademacher_panels<T>(a.seed_out, in.d_out, k_out);
    const int64_t per_sample = T_ * (ld_in + ld_out) * static_cast<int64_t>(sizeof(T));
    const int64_t slab = imax(1, imin(in.n, kFactorSlabBytes / per_sample));
    T* ga = scratch<T>(slab * T_ * ld_in);   // [slab, T, ld_in]
    T* gg = scratch<T>(slab * T_ * ld_out);  // [slab, T, ld_out]
    const int64_t token_blocks = ceil_div(T_, kTokenBlock);
    const RowBlocks o_blocks(k_out);
    const int64_t i_panels = ceil_div(k_in, W);

#pragma omp parallel num_threads(nt)
    {
      T* stage = is_native<E, T>() ? nullptr : scratch<T>(kRowsMR * kFeatureChunk);
      for (int64_t n0 = 0; n0 < in.n; n0 += slab) {
        const int64_t sb = imin(slab, in.n - n0);
#pragma omp for schedule(dynamic, 1)
        for (int64_t item = 0; item < sb * 2 * token_blocks; ++item) {
          const int64_t s = item / (2 * token_blocks), which = (item / token_blocks) % 2;
          const int64_t t0 = (item % token_blocks) * kTokenBlock, tb = imin(kTokenBlock, T_ - t0);
          if (which == 0)
            project_tokens<E, T>(in.a, in.a_stride_n, in.a_stride_t, n0 + s, t0, tb, in.d_in, k_in,
                                 r_in, stage, ga + (s * T_ + t0) * ld_in, ld_in);
          else
            project_tokens<E, T>(in.g, in.g_stride_n, in.g_stride_t, n0 + s, t0, tb, in.d_out,
                                 k_out, r_out, stage, gg + (s * T_ + t0) * ld_out, ld_out);
        }
#pragma omp for schedule(dynamic, 1)
        for (int64_t item = 0; item < o_blocks.count * i_panels; ++item) {
          const int64_t ob = item / i_panels, i0 = (item % i_panels) * W;
          const int64_t o0 = o_blocks.begin(ob);
          for (int64_t s = 0; s < sb; ++s) {
            const int64_t row = in.segments != nullptr ? in.segments[n0 + s] : n0 + s;
            micro_panel<T, false>(o_blocks.size(ob), T_, gg + s * T_ * ld_out + o0, ld_out,
                                  ga + s * T_ * ld_in + i0, ld_in, out + row * width + o0 * k_in + i0,
                                  k_in, imin(W, k_in - i0));
          }
        }
      }
      free(stage);
    }
    free(r_in);
    free(r_out);
    free(ga);
    free(gg);
  }
  scale_in_place<T>(out, in.rows_out * width, static_cast<T>(a.scale), nt);
}

// ------------------------------------------------------------- project_outer

// Tile features per generated sign panel: a 32 KiB panel stays in L1 (128 features x 64
// floats on AVX-512; 512 x 16 on AVX2, whose narrower panels made 128-feature micro-kernel
// calls short: C loaded and stored every 128 FMAs). The chain over features continues
// through C, so no sum depends on it.
template <typename T>
constexpr int64_t proj_chunk() { return 32768 / (wide_width<T>() * static_cast<int64_t>(sizeof(T))); }

// Input rows of every output row, ascending: rows of u are order[start[u] .. start[u+1]).
struct Members {
  Buffer<int64_t> start, order;
  explicit Members(const GradFactors& in) : start(in.rows_out + 1, 0), order(in.n, 0) {
    for (int64_t n = 0; n < in.n; ++n) ++start[(in.segments ? in.segments[n] : n) + 1];
    for (int64_t u = 0; u < in.rows_out; ++u) start[u + 1] += start[u];
    Buffer<int64_t> cursor(in.rows_out + 1, 0);
    for (int64_t u = 0; u < in.rows_out; ++u) cursor[u] = start[u];
    for (int64_t n = 0; n < in.n; ++n) order[cursor[in.segments ? in.segments[n] : n]++] = n;
  }
};

// Token chunk and staging sizes of accumulate_outer (per thread).
template <Elem E, typename T>
struct OuterStaging {
  int64_t tokens, a_elems, g_elems;
  explicit OuterStaging(int64_t d_in) {
    constexpr int64_t W = wide_width<T>();
    if (is_native<E, T>()) {  // only a ragged last panel of a is staged
      tokens = kStageElems / W;
      a_elems = d_in % W != 0 ? tokens * W : 0;
      g_elems = 0;
    } else {
      tokens = imax(1, kStageElems / round_up(d_in, W));
      a_elems = tokens * round_up(d_in, W);
      g_elems = tokens * kRowsMR;
    }
  }
};

// tile[(o - o_first) * d_in + i] += sum_t g[n, t, o] a[n, t, i] for mr rows o from o_first,
// all i, all tokens of input row n (tile row stride d_in).
template <Elem E, typename T>
void accumulate_outer(const GradFactors& in, int64_t n, int64_t o_first, int mr, T* tile,
                      const OuterStaging<E, T>& st, T* stage_a, T* stage_g) {
  constexpr int64_t W = wide_width<T>();
  const int64_t d_in = in.d_in;
  const int64_t full = is_native<E, T>() ? d_in / W * W : 0;  // panels read straight from a
  for (int64_t t0 = 0; t0 < in.t; t0 += st.tokens) {
    const int64_t tc = imin(st.tokens, in.t - t0);
    const void* a_rows = elem_ptr<E>(in.a, n * in.a_stride_n + t0 * in.a_stride_t);
    const void* g_rows = elem_ptr<E>(in.g, n * in.g_stride_n + t0 * in.g_stride_t + o_first);
    const T* ga = stage_g;
    int64_t lda = kRowsMR;
    if (is_native<E, T>()) {
      ga = static_cast<const T*>(g_rows);
      lda = in.g_stride_t;
    } else {
      stage_rows<E, T>(g_rows, in.g_stride_t, tc, mr, stage_g, kRowsMR);
    }
    for (int64_t i0 = 0; i0 < full; i0 += W)
      micro_panel<T, false>(mr, tc, ga, lda, static_cast<const T*>(a_rows) + i0, in.a_stride_t,
                            tile + i0, d_in, W);
    if (full < d_in) {  // converted input, or the ragged last panel: stage a's columns [full, d_in)
      const int64_t ld = round_up(d_in - full, W);
      stage_rows<E, T>(elem_ptr<E>(a_rows, full), in.a_stride_t, tc, d_in - full, stage_a, ld);
      for (int64_t i0 = full; i0 < d_in; i0 += W)
        micro_panel<T, false>(mr, tc, ga, lda, stage_a + (i0 - full), ld, tile + i0, d_in,
                              imin(W, d_in - i0));
    }
  }
}

// The threads of project_outer form a fixed grid of row teams x column teams; each thread
// builds the G tiles of its own output rows and projects them onto its own panels of
// columns, with no synchronization until the end. Column teams repeat tile builds, row
// teams repeat panel generation: pick the grid with the least repeated work. (Costs in
// units of one row's FMA work per feature and 64 columns: a tile build costs T per row,
// generating a panel ~3.) Each output entry is still one chain computed by one thread.
struct ThreadGrid {
  int rows, cols;
};

inline ThreadGrid outer_grid(int nt, int64_t out_rows, int64_t tokens_total, int64_t panels, int64_t k) {
  ThreadGrid best{1, 1};
  double best_cost = -1.0;
  for (int r = 1; r <= nt; ++r) {
    if (nt % r != 0) continue;
    const int c = nt / r;
    if (r > imax(1, ceil_div(out_rows, kRowsMR)) || c > panels) continue;
    const double slabs = static_cast<double>(ceil_div(ceil_div(out_rows, r), kOuterSlab));
    const double cost = c * static_cast<double>(tokens_total) + r * slabs * 3.0 * 64.0 * ceil_div(k, 64);
    if (best_cost < 0 || cost < best_cost) {
      best = {r, c};
      best_cost = cost;
    }
  }
  return best;
}

template <Elem E, typename T>
void outer_typed(const OuterArgs& a) {
  constexpr int64_t W = wide_width<T>();
  const GradFactors& in = a.in;
  const int64_t d_in = in.d_in, d_out = in.d_out, k = a.k;
  T* out = static_cast<T*>(a.out);
  memset(out, 0, sizeof(T) * in.rows_out * k);
  const Members members(in);
  int64_t ob_max = imax(1, imin(d_out, kTileFeatures / d_in));
  if (ob_max > kRowsMR) ob_max = ob_max / kRowsMR * kRowsMR;  // whole micro-kernel blocks
  // Tile row stride, padded by one cache line when it is a multiple of 4 KiB: the projection
  // reads 4-6 tile rows in lock step, and rows 4 KiB-aliased share one L1 set.
  const int64_t tile_ld = ob_max * d_in + ((ob_max * d_in * static_cast<int64_t>(sizeof(T))) % 4096 == 0
                                               ? 64 / static_cast<int64_t>(sizeof(T)) : 0);
  const int64_t panels = ceil_div(k, W);
  const ThreadGrid grid = outer_grid(a.num_threads, in.rows_out, in.n * in.t, panels, k);
  const uint64_t key = seed_key(a.seed, SketchKind::kRademacher);
  const OuterStaging<E, T> staging(d_in);

#pragma omp parallel num_threads(grid.rows * grid.cols)
  {
    const int tid = omp_get_thread_num();
    const int64_t rt = tid / grid.cols, ct = tid % grid.cols;
    const int64_t u_lo = rt * in.rows_out / grid.rows, u_hi = (rt + 1) * in.rows_out / grid.rows;
    const int64_t p_lo = ct * panels / grid.cols, p_hi = (ct + 1) * panels / grid.cols;
    T* tile = scratch<T>(imin(kOuterSlab, u_hi - u_lo) * tile_ld);
    constexpr int64_t kProjChunk = proj_chunk<T>();
    T* bp = scratch<T>(kProjChunk * W);
    uint64_t* rkeys = scratch<uint64_t>(kProjChunk);
    uint64_t* words = scratch<uint64_t>(kProjChunk);
    T* stage_a = scratch<T>(staging.a_elems);
    T* stage_g = scratch<T>(staging.g_elems);
    for (int64_t u0 = u_lo; u0 < u_hi; u0 += kOuterSlab) {
      const int64_t su = imin(kOuterSlab, u_hi - u0);
      const RowBlocks row_blocks(su);
      for (int64_t o0 = 0; o0 < d_out; o0 += ob_max) {
        const int64_t ob = imin(ob_max, d_out - o0);
        const RowBlocks o_blocks(ob);
        // The tile of G for rows o0 .. o0 + ob of this thread's output rows.
        for (int64_t u = 0; u < su; ++u)
          for (int64_t b = 0; b < o_blocks.count; ++b) {
            T* dst = tile + u * tile_ld + o_blocks.begin(b) * d_in;
            memset(dst, 0, sizeof(T) * o_blocks.size(b) * d_in);
            for (int64_t m = members.start[u0 + u]; m < members.start[u0 + u + 1]; ++m)
              accumulate_outer<E, T>(in, members.order[m], o0 + o_blocks.begin(b), o_blocks.size(b),
                                     dst, staging, stage_a, stage_g);
          }
        // Project the tile's features onto this thread's panels (rows read in place).
        const int64_t features = ob * d_in;
        for (int64_t f0 = 0; f0 < features; f0 += kProjChunk) {
          const int64_t kc = imin(kProjChunk, features - f0);
          for (int64_t p = 0; p < kc; ++p) rkeys[p] = row_key(key, a.feature_offset + o0 * d_in + f0 + p);
          for (int64_t panel = p_lo; panel < p_hi; ++panel) {
            const int64_t j0 = panel * W;
            if (panel == p_lo || j0 % 64 == 0) sign_words(rkeys, kc, j0 >> 6, words);
            rademacher_panel<T>(words, kc, j0, bp);
            for (int64_t b = 0; b < row_blocks.count; ++b)
              micro_panel<T, true>(row_blocks.size(b), kc, tile + row_blocks.begin(b) * tile_ld + f0, tile_ld,
                                   bp, W, out + (u0 + row_blocks.begin(b)) * k + j0, k, imin(W, k - j0));
          }
        }
      }
    }
    free(tile);
    free(bp);
    free(rkeys);
    free(words);
    free(stage_a);
    free(stage_g);
  }
  scale_in_place<T>(out, in.rows_out * k, static_cast<T>(a.scale), a.num_threads);
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

void project_factored(const FactoredArgs& a) { dispatch_native<FactoredFn>(a.in.elem, a); }
void project_outer(const OuterArgs& a) { dispatch_native<OuterFn>(a.in.elem, a); }

}  // namespace trustattr::cpu::TA_ISA_NS
