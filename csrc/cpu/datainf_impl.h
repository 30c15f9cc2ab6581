// CPU kernel of datainf_scores: DataInf's layer-wise Sherman-Morrison influence
// in streaming passes over train [N, k] (possibly a memory-mapped file), reusing
// the dot sequence of score_impl.h. Included after score_impl.h by the
// attr_isa_*.cpp files only, once per instruction set.
//
// datainf_scores (paper.md 4.1), rows in fixed chunks of C = max(4096, ceil(N / 256))
// rows (a function of N only; per-chunk partial sums are reduced in chunk order):
//   pass 0 (only when damping is None): S_l = sum_i ||g_il||^2;
//          lambda_l = 0.1 * S_l / (N * |block l|).
//   pass 1: per row i and block l: s = ||g_il||^2, d = <v_l, g_il>,
//          c = d / (lambda_l + s) (double); w_l += c * g_il.
//          h_l = (N v_l - w_l) / (N lambda_l)   (h_l = 0 for an all-zero block)
//   pass 2: score_i = -<h, g_i>  (one dot per row over all k columns).
#pragma once

#include <omp.h>

#include "score_impl.h"

#ifndef TA_ISA_NS
#error "define TA_ISA_NS before including datainf_impl.h"
#endif

namespace trustattr::cpu::TA_ISA_NS {
namespace {

template <Elem E, typename T>
void datainf_typed(const DatainfArgs& di) {
  const ScoreArgs& a = di.s;
  const int64_t n = a.n, k = a.k, L = di.num_blocks;
  const int64_t* bounds = di.blocks;
  const int64_t chunk = imax(4096, ceil_div(n, 256));
  const int64_t chunks = ceil_div(n, chunk);
  const int nt = a.num_threads;
  const T* v = static_cast<const T*>(a.query);
  const bool stage_rows_needed = !is_native<E, T>();

  // Runs body(i, row) for every row of chunk c (rows converted to T when needed).
  auto for_rows = [&](int64_t c, T* stage, auto&& body) {
    const T* ptrs[kScoreRows];
    const int64_t end = imin(n, (c + 1) * chunk);
    for (int64_t r0 = c * chunk; r0 < end; r0 += kScoreRows) {
      const int64_t rows = imin(kScoreRows, end - r0);
      row_pointers<E, T>(a, r0, rows, stage, ptrs);
      for (int64_t r = 0; r < rows; ++r) body(r0 + r, ptrs[r]);
    }
  };

  Buffer<double> lambda(L, di.damping);
  if (di.damping < 0) {  // pass 0: lambda_l = 0.1 * mean over rows of the block's mean square
    Buffer<double> partial(chunks * L, 0.0);
#pragma omp parallel num_threads(nt)
    {
      T* stage = stage_rows_needed ? scratch<T>(kScoreRows * k) : nullptr;
#pragma omp for schedule(dynamic, 1)
      for (int64_t c = 0; c < chunks; ++c)
        for_rows(c, stage, [&](int64_t, const T* row) {
          for (int64_t l = 0; l < L; ++l)
            partial[c * L + l] += span_dot<T>(row, row, bounds[l], bounds[l + 1]);
        });
      free(stage);
    }
    for (int64_t l = 0; l < L; ++l) {
      double sum = 0.0;
      for (int64_t c = 0; c < chunks; ++c) sum += partial[c * L + l];
      lambda[l] = 0.1 * sum / (static_cast<double>(n) * static_cast<double>(bounds[l + 1] - bounds[l]));
    }
  }

  // pass 1: w_l = sum_i c_il g_il, per chunk, then reduced in chunk order.
  Buffer<T> w_partial(chunks * k, T(0));
#pragma omp parallel num_threads(nt)
  {
    T* stage = stage_rows_needed ? scratch<T>(kScoreRows * k) : nullptr;
#pragma omp for schedule(dynamic, 1)
    for (int64_t c = 0; c < chunks; ++c) {
      T* w = w_partial.data + c * k;
      for_rows(c, stage, [&](int64_t, const T* row) {
        for (int64_t l = 0; l < L; ++l) {
          if (lambda[l] == 0.0) continue;
          const int64_t lo = bounds[l], hi = bounds[l + 1];
          const double s = span_dot<T>(row, row, lo, hi), d = span_dot<T>(row, v, lo, hi);
          const T coef = static_cast<T>(d / (lambda[l] + s));
          for (int64_t j = lo; j < hi; ++j) w[j] += coef * row[j];
        }
      });
    }
    free(stage);
  }
  const int64_t k_pad = ceil_div(k, Vec64Of<T>::lanes) * Vec64Of<T>::lanes;
  Buffer<T> h(k_pad, T(0));
  for (int64_t l = 0; l < L; ++l) {
    if (lambda[l] == 0.0) continue;  // every g_il is 0: the block adds nothing to any score
    for (int64_t j = bounds[l]; j < bounds[l + 1]; ++j) {
      double w = 0.0;
      for (int64_t c = 0; c < chunks; ++c) w += w_partial[c * k + j];
      h[j] = static_cast<T>((static_cast<double>(n) * v[j] - w) / (static_cast<double>(n) * lambda[l]));
    }
  }

  // pass 2: score_i = -<h, g_i>.
  T* out = static_cast<T*>(di.out);
  ScoreArgs dot = a;
  dot.query = h.data;
  dot.query_stride = k_pad;
  dot.m = 1;
  dot.normalize = false;
  score_typed<E, T>(dot, out);
  for (int64_t i = 0; i < n; ++i) out[i] = -out[i];
}

template <Elem E, typename T>
struct DatainfFn {
  static void run(const DatainfArgs& a) { datainf_typed<E, T>(a); }
};

}  // namespace

void datainf(const DatainfArgs& a) { dispatch_score<DatainfFn>(a.s.train_elem, a.s.f64, a); }

}  // namespace trustattr::cpu::TA_ISA_NS
