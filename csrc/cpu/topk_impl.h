// CPU kernel of topk_score, on the dot products of score_impl.h. Included
// after score_impl.h by the attr_isa_*.cpp files only, once per instruction set.
//
// topk_score: rows split into blocks of 256; threads take runs of 16 blocks
// (4096 rows read sequentially; the file is read once), score a block into a
// [256, M] buffer, and offers each score to its per-query heap of size topk
// (root = worst kept candidate; a score enters only if better than the root).
// "Better" is a strict total order: larger value (smaller if largest=false),
// ties broken by the smaller row index, NaN ranked above every number (as in
// torch.topk/torch.sort). Heaps of all threads are merged and sorted best
// first at the end, so the result is the exact top-k under that order,
// whatever the thread count. Extra memory: O(threads * (M * topk + 256 * (M + k))).
#pragma once

#include <omp.h>
#include <stdlib.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "score_impl.h"

#ifndef TA_ISA_NS
#error "define TA_ISA_NS before including topk_impl.h"
#endif

namespace trustattr::cpu::TA_ISA_NS {
namespace {

constexpr int64_t kTopkRows = 256;  // rows per topk block

template <typename T>
struct Candidate {
  T value;
  int64_t index;
};

// a ranks before b: larger (or smaller) value, NaN above every number, then smaller index.
template <typename T>
struct Better {
  bool largest;
  bool operator()(const Candidate<T>& a, const Candidate<T>& b) const {
    const bool an = a.value != a.value, bn = b.value != b.value;  // NaN
    if (an || bn) {
      if (an && bn) return a.index < b.index;
      return largest ? an : bn;
    }
    if (a.value != b.value) return largest ? a.value > b.value : a.value < b.value;
    return a.index < b.index;
  }
};

// A bounded heap whose front is the worst kept candidate.
template <typename T>
void offer(std::vector<Candidate<T>>& heap, int64_t topk, const Candidate<T>& c, const Better<T>& better) {
  if (static_cast<int64_t>(heap.size()) < topk) {
    heap.push_back(c);
    std::push_heap(heap.begin(), heap.end(), better);
  } else if (better(c, heap.front())) {
    std::pop_heap(heap.begin(), heap.end(), better);
    heap.back() = c;
    std::push_heap(heap.begin(), heap.end(), better);
  }
}

template <Elem E, typename T>
void topk_typed(const TopkArgs& t) {
  const ScoreArgs& a = t.s;
  Buffer<T> norms(a.m, T(0));
  query_norms<T>(a, norms);
  const Better<T> better{t.largest};
  const int64_t blocks = ceil_div(a.n, kTopkRows);
  const int nt = a.num_threads;
  std::vector<std::vector<Candidate<T>>> kept(static_cast<size_t>(nt) * a.m);
#pragma omp parallel num_threads(nt)
  {
    const int tid = omp_get_thread_num();
    T* stage = !is_native<E, T>() ? scratch<T>(kTopkRows * a.k) : nullptr;
    T* scores = scratch<T>(kTopkRows * a.m);
    const T** ptrs = static_cast<const T**>(malloc(sizeof(T*) * kTopkRows));
    std::vector<Candidate<T>>* heaps = &kept[static_cast<size_t>(tid) * a.m];
#pragma omp for schedule(dynamic, 16)  // 4096-row runs: sequential reads, and no thread waits on a descheduled one
    for (int64_t b = 0; b < blocks; ++b) {
      const int64_t r0 = b * kTopkRows, rows = a.n - r0 < kTopkRows ? a.n - r0 : kTopkRows;
      row_pointers<E, T>(a, r0, rows, stage, ptrs);
      score_rows<T>(a, ptrs, rows, norms.data, scores, a.m);
      for (int64_t q = 0; q < a.m; ++q) {
        std::vector<Candidate<T>>& heap = heaps[q];
        for (int64_t r = 0; r < rows; ++r) offer<T>(heap, t.topk, {scores[r * a.m + q], r0 + r}, better);
      }
    }
    free(stage);
    free(scores);
    free(ptrs);
  }
  T* values = static_cast<T*>(t.values);
  for (int64_t q = 0; q < a.m; ++q) {
    std::vector<Candidate<T>> all;
    for (int th = 0; th < nt; ++th) {
      const auto& h = kept[static_cast<size_t>(th) * a.m + q];
      all.insert(all.end(), h.begin(), h.end());
    }
    std::partial_sort(all.begin(), all.begin() + t.topk, all.end(), better);
    for (int64_t i = 0; i < t.topk; ++i) {
      values[q * t.topk + i] = all[i].value;
      t.indices[q * t.topk + i] = all[i].index;
    }
  }
}

template <Elem E, typename T>
struct TopkFn {
  static void run(const TopkArgs& a) { topk_typed<E, T>(a); }
};

}  // namespace

void topk_score(const TopkArgs& a) { dispatch_score<TopkFn>(a.s.train_elem, a.s.f64, a); }

}  // namespace trustattr::cpu::TA_ISA_NS
