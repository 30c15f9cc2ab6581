// CPU kernel of score, and the streaming dot products of every scoring op:
// passes over the rows of a train feature matrix [N, k] (possibly a
// memory-mapped file) against query rows; topk_impl.h and datainf_impl.h
// build on them. Included by the attr_isa_*.cpp files
// only, once per instruction set.
//
// Dot products. <x, q> of a train row and a query row is ONE fixed sequence:
// acc (a 64-byte vector of L lanes, L = 16 float / 8 double, on EVERY instruction
// set: 2 ymm on AVX2, 4 xmm on SSE2/NEON) += x[j:j+L] * q[j:j+L]
// for j = 0, L, 2L, ... (the last partial vector zero-padded), then the lanes
// are summed by a fixed halving tree (lane i += lane i + w for w = L/2 .. 1).
// The register-blocked tile (2 rows x up to kQueryGroup queries, sized to the
// register file: 2 x 8 on AVX-512, 2 x 3 on AVX2; the next pair of rows is prefetched
// into L2 (prefetcht1: the non-temporal hint used before ran 2.5x slower on a Xeon,
// Sapphire Rapids class, issue 17), since a row is often exactly one 4 KB page where the
// hardware streamer restarts) computes every dot in exactly that
// sequence, so a score never depends on N, M, the blocking, the thread count,
// or which op computed it (score, topk_score and datainf_scores agree bit for
// bit). Norms (normalize=True) are <x, x> by the same sequence; cosine =
// dot / (sqrt(<x,x>) sqrt(<q,q>)) evaluated in double, 0 when either norm is 0.
// Rows that are not float/double (bf16, fp16 files) are converted 64 rows at a
// time into a per-thread buffer; float rows are read in place.
//
// score: row blocks of 64 rows in parallel; out[n, m] written directly.
#pragma once

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include <cstdint>

#include "attr_common_impl.h"

#ifndef TA_ISA_NS
#error "define TA_ISA_NS before including score_impl.h"
#endif

namespace trustattr::cpu::TA_ISA_NS {
namespace {

constexpr int64_t kScoreRows = 64;   // rows per score block (converted together)
// Queries per register tile of 2 rows: each (row, query) dot holds one 64-byte
// accumulator, i.e. 64 / kVecBytes registers, and four registers stay free for the
// rows and a query: 2 x 8 on AVX-512 (16 of 32 zmm), 2 x 3 on AVX2 (12 of 16 ymm)
// and NEON (24 of 32), 2 x 1 on SSE2 (8 of 16 xmm). The tile never changes a dot.
constexpr int kQueryGroup = (kVecRegs - 4) / (2 * (64 / kVecBytes)) < 8
                                ? (kVecRegs - 4) / (2 * (64 / kVecBytes)) : 8;
// Queries per block when they do not fit in cache: whole tiles, about 64.
constexpr int64_t kQueryBlock = kQueryGroup * (64 / kQueryGroup);
constexpr int64_t kQueryCacheBytes = 256 * 1024;  // queries (of a block) that count as cached
constexpr int64_t kSpan = 512;       // columns per span of the blocked path (a multiple of L)

// Native vectors per 64-byte dot accumulator: lanes p*L .. p*L + L - 1 of the
// 64-byte vector live in native vector p (never a 64-byte variable below AVX-512:
// GCC keeps those in memory, which made every dot a load-store chain).
constexpr int kDotParts = 64 / kVecBytes;

// The halving tree of a 64-byte accumulator stored at v: the steps that add whole
// native vectors (w >= native lanes) run as vector adds, the rest on scalars; the
// same additions in the same order as lane i += lane i + w on one vector.
template <typename T>
inline T hsum(const void* v) {
  using N = typename VecOf<T>::type;
  constexpr int NL = VecOf<T>::lanes;
  constexpr int P = kDotParts;
  N part[P];
  memcpy(part, v, sizeof(part));
  for (int n = P / 2; n >= 1; n /= 2)
    for (int i = 0; i < n; ++i) part[i] += part[i + n];
  T b[NL];
  memcpy(b, &part[0], sizeof(b));
  for (int w = NL / 2; w >= 1; w /= 2)
    for (int i = 0; i < w; ++i) b[i] += b[i + w];
  return b[0];
}

// acc[r * MQ + q] += the lane products of rows[r] and query row q over columns
// [j0, j1) (j0 a multiple of L; a partial last vector only when j1 == k). Query
// rows have stride ldq and are zero-padded to a multiple of L. When `next` is
// given, the rows of the next tile are prefetched (into L2), one line
// per step: train rows are often exactly one page, where the hardware streamer
// restarts. Spans continue the same chains, so any split of [0, k) into spans
// gives the same bits. (L: the 64-byte dot vector's lanes; each is held as
// kDotParts native vectors, lane for lane the same sums.)
template <typename T, int RW, int MQ>
void dot_span(int64_t j0, int64_t j1, const T* const* rows, const T* const* next, const T* query,
              int64_t ldq, typename Vec64Of<T>::type* acc_io) {
  using N = typename VecOf<T>::type;
  constexpr int NL = VecOf<T>::lanes;
  constexpr int L = Vec64Of<T>::lanes;
  constexpr int P = kDotParts;
  // Accumulators loaded and stored one native vector at a time (a whole-array copy
  // made GCC keep the array on the stack: every FMA went through memory).
  N acc[RW][MQ][P];
  char* io = reinterpret_cast<char*>(acc_io);
#pragma GCC unroll 16
  for (int r = 0; r < RW; ++r)
#pragma GCC unroll 16
    for (int q = 0; q < MQ; ++q)
#pragma GCC unroll 16
      for (int p = 0; p < P; ++p) memcpy(&acc[r][q][p], io + ((r * MQ + q) * P + p) * sizeof(N), sizeof(N));
  const T* src[RW];
  for (int r = 0; r < RW; ++r) src[r] = rows[r];
  // One step: columns [j, j + L) of the rows (read at src[r] + off) and the queries.
  const auto step = [&](const T* const* xs, int64_t off, int64_t j) __attribute__((always_inline)) {
#pragma GCC unroll 16
    for (int p = 0; p < P; ++p) {
      N x[RW];
#pragma GCC unroll 16
      for (int r = 0; r < RW; ++r) memcpy(&x[r], xs[r] + off + p * NL, sizeof(N));
#pragma GCC unroll 16
      for (int q = 0; q < MQ; ++q) {
        N y;
        memcpy(&y, query + q * ldq + j + p * NL, sizeof(N));
#pragma GCC unroll 16
        for (int r = 0; r < RW; ++r) acc[r][q][p] += x[r] * y;
      }
    }
  };
  const int64_t full = j0 + (j1 - j0) / L * L;
  if (next != nullptr) {
    for (int64_t j = j0; j < full; j += L) {
#pragma GCC unroll 16
      for (int r = 0; r < RW; ++r) __builtin_prefetch(next[r] + j, 0, 2);
      step(src, j, j);
    }
  } else {
    for (int64_t j = j0; j < full; j += L) step(src, j, j);
  }
  if (full < j1) {  // the partial last vector, zero-padded
    alignas(64) T tail[RW][L];
    const T* ts[RW];
    for (int r = 0; r < RW; ++r) {
      memset(tail[r], 0, sizeof(tail[r]));
      memcpy(tail[r], rows[r] + full, sizeof(T) * (j1 - full));
      ts[r] = tail[r];
    }
    step(ts, 0, full);
  }
#pragma GCC unroll 16
  for (int r = 0; r < RW; ++r)
#pragma GCC unroll 16
    for (int q = 0; q < MQ; ++q)
#pragma GCC unroll 16
      for (int p = 0; p < P; ++p) memcpy(io + ((r * MQ + q) * P + p) * sizeof(N), &acc[r][q][p], sizeof(N));
}

template <typename T, int RW, int MQ = kQueryGroup>
void dot_span_queries(int mq, int64_t j0, int64_t j1, const T* const* rows, const T* const* next,
                      const T* query, int64_t ldq, typename Vec64Of<T>::type* acc) {
  if constexpr (MQ > 1)
    if (mq < MQ) return dot_span_queries<T, RW, MQ - 1>(mq, j0, j1, rows, next, query, ldq, acc);
  dot_span<T, RW, MQ>(j0, j1, rows, next, query, ldq, acc);
}

// One tile (rw <= 2 rows x mq <= kQueryGroup queries) over columns [j0, j1).
template <typename T>
void dot_span_tile(int rw, int mq, int64_t j0, int64_t j1, const T* const* rows, const T* const* next,
                   const T* query, int64_t ldq, typename Vec64Of<T>::type* acc) {
  if (rw == 2) dot_span_queries<T, 2>(mq, j0, j1, rows, next, query, ldq, acc);
  else dot_span_queries<T, 1>(mq, j0, j1, rows, next, query, ldq, acc);
}

// out[r * ldo + q] = hsum(acc[r * mq + q]).
template <typename T>
void finish_tile(int rw, int mq, const typename Vec64Of<T>::type* acc, T* out, int64_t ldo) {
  for (int r = 0; r < rw; ++r)
    for (int q = 0; q < mq; ++q) out[r * ldo + q] = hsum<T>(&acc[r * mq + q]);
}

// <x[lo, hi), y[lo, hi)> and <x[lo, hi), x[lo, hi)> by the dot sequence above.
template <typename T>
inline T span_dot(const T* x, const T* y, int64_t lo, int64_t hi) {
  using N = typename VecOf<T>::type;
  constexpr int NL = VecOf<T>::lanes;
  constexpr int L = Vec64Of<T>::lanes;
  constexpr int P = kDotParts;
  N acc[P] = {};
  int64_t j = lo;
  for (; j + L <= hi; j += L)
    for (int p = 0; p < P; ++p) {
      N a, b;
      memcpy(&a, x + j + p * NL, sizeof(N));
      memcpy(&b, y + j + p * NL, sizeof(N));
      acc[p] += a * b;
    }
  if (j < hi) {
    alignas(64) T xa[L] = {}, ya[L] = {};
    memcpy(xa, x + j, sizeof(T) * (hi - j));
    memcpy(ya, y + j, sizeof(T) * (hi - j));
    for (int p = 0; p < P; ++p) {
      N a, b;
      memcpy(&a, xa + p * NL, sizeof(N));
      memcpy(&b, ya + p * NL, sizeof(N));
      acc[p] += a * b;
    }
  }
  return hsum<T>(acc);
}

// Train rows [r0, r0 + rows) as row pointers in the compute type: in place for
// float/double rows, else converted into `stage` (row stride k).
template <Elem E, typename T>
void row_pointers(const ScoreArgs& a, int64_t r0, int64_t rows, T* stage, const T** ptrs) {
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t base = (r0 + r) * a.train_stride;
    if constexpr (is_native<E, T>()) {
      ptrs[r] = static_cast<const T*>(a.train) + base;
    } else {
      if (r + 1 < rows) prefetch_run(a.train, (base + a.train_stride) * elem_size<E>(), a.k * elem_size<E>());
      convert_run<E, T>(a.train, base, a.k, stage + r * a.k);
      ptrs[r] = stage + r * a.k;
    }
  }
}

inline double cosine(double dot, double xx, double qq) {
  return (xx == 0.0 || qq == 0.0) ? 0.0 : dot / (sqrt(xx) * sqrt(qq));
}

// out[r * ldo + q] = score of row r against query q, q < m (query_norms: <q, q>).
template <typename T>
void normalize_rows(const ScoreArgs& a, const T* const* rows, int64_t r0, int64_t r1, const T* query_norms,
                    T* out, int64_t ldo) {
  for (int64_t i = r0; i < r1; ++i) {
    const double xx = span_dot<T>(rows[i], rows[i], 0, a.k);
    for (int64_t q = 0; q < a.m; ++q) out[i * ldo + q] = static_cast<T>(cosine(out[i * ldo + q], xx, query_norms[q]));
  }
}

// Scores of rows[0 .. nrows) against every query: out[r * ldo + q].
//  * queries that fit in cache (the usual few queries): one pass over each row pair,
//    every query group in turn while the pair sits in L1, the next pair prefetched;
//  * else (many long queries, e.g. a Gram matrix): blocks of 64 queries and spans of
//    kSpan columns, the tiles' SIMD accumulators kept in a buffer between spans, so a
//    span of rows and queries is reused from cache. Both run the same dot sequence.
template <typename T>
void score_rows(const ScoreArgs& a, const T* const* rows, int64_t nrows, const T* query_norms, T* out,
                int64_t ldo) {
  using V = typename Vec64Of<T>::type;
  const T* query = static_cast<const T*>(a.query);
  const int64_t ldq = a.query_stride;
  if (imin(a.m, kQueryBlock) * a.k * static_cast<int64_t>(sizeof(T)) <= kQueryCacheBytes) {
    for (int64_t r = 0; r < nrows; r += 2) {
      const int rw = r + 2 <= nrows ? 2 : 1;
      const T* const* next = r + 4 <= nrows ? rows + r + 2 : nullptr;
      for (int64_t q0 = 0; q0 < a.m; q0 += kQueryGroup) {
        const int mq = static_cast<int>(imin(kQueryGroup, a.m - q0));
        V acc[2 * kQueryGroup] = {};
        dot_span_tile<T>(rw, mq, 0, a.k, rows + r, q0 == 0 ? next : nullptr, query + q0 * ldq, ldq, acc);
        finish_tile<T>(rw, mq, acc, out + r * ldo + q0, ldo);
      }
      if (a.normalize) normalize_rows<T>(a, rows, r, r + rw, query_norms, out, ldo);
    }
    return;
  }
  const int64_t pairs = ceil_div(nrows, 2), groups_per_block = kQueryBlock / kQueryGroup;
  Buffer<V> acc(pairs * groups_per_block * 2 * kQueryGroup, V{});
  for (int64_t qb = 0; qb < a.m; qb += kQueryBlock) {
    const int64_t groups = ceil_div(imin(kQueryBlock, a.m - qb), kQueryGroup);
    for (int64_t i = 0; i < pairs * groups_per_block * 2 * kQueryGroup; ++i) acc[i] = V{};
    for (int64_t j0 = 0; j0 < a.k; j0 += kSpan) {
      const int64_t j1 = imin(a.k, j0 + kSpan);
      for (int64_t g = 0; g < groups; ++g) {
        const int64_t q0 = qb + g * kQueryGroup;
        const int mq = static_cast<int>(imin(kQueryGroup, a.m - q0));
        for (int64_t p = 0; p < pairs; ++p)
          dot_span_tile<T>(2 * p + 2 <= nrows ? 2 : 1, mq, j0, j1, rows + 2 * p, nullptr, query + q0 * ldq, ldq,
                           &acc[(p * groups_per_block + g) * 2 * kQueryGroup]);
      }
    }
    for (int64_t p = 0; p < pairs; ++p)
      for (int64_t g = 0; g < groups; ++g) {
        const int64_t q0 = qb + g * kQueryGroup;
        finish_tile<T>(2 * p + 2 <= nrows ? 2 : 1, static_cast<int>(imin(kQueryGroup, a.m - q0)),
                       &acc[(p * groups_per_block + g) * 2 * kQueryGroup], out + 2 * p * ldo + q0, ldo);
      }
  }
  if (a.normalize) normalize_rows<T>(a, rows, 0, nrows, query_norms, out, ldo);
}

template <typename T>
void query_norms(const ScoreArgs& a, Buffer<T>& norms) {
  const T* query = static_cast<const T*>(a.query);
  if (a.normalize)
    for (int64_t q = 0; q < a.m; ++q)
      norms[q] = span_dot<T>(query + q * a.query_stride, query + q * a.query_stride, 0, a.k);
}


// ------------------------------------------------------------------- score

template <Elem E, typename T>
void score_typed(const ScoreArgs& a, T* out) {
  Buffer<T> norms(a.m, T(0));
  query_norms<T>(a, norms);
  const int64_t blocks = ceil_div(a.n, kScoreRows);
#pragma omp parallel num_threads(a.num_threads)
  {
    T* stage = !is_native<E, T>() ? scratch<T>(kScoreRows * a.k) : nullptr;
    const T* ptrs[kScoreRows];
#pragma omp for schedule(dynamic, 4)
    for (int64_t b = 0; b < blocks; ++b) {
      const int64_t r0 = b * kScoreRows, rows = a.n - r0 < kScoreRows ? a.n - r0 : kScoreRows;
      row_pointers<E, T>(a, r0, rows, stage, ptrs);
      score_rows<T>(a, ptrs, rows, norms.data, out + r0 * a.m, a.m);
    }
    free(stage);
  }
}

struct ScoreCall {
  const ScoreArgs* args;
  void* out;
};
template <Elem E, typename T>
struct ScoreFn {
  static void run(const ScoreCall& c) { score_typed<E, T>(*c.args, static_cast<T*>(c.out)); }
};

}  // namespace

void score(const ScoreArgs& a, void* out) {
  dispatch_score<ScoreFn>(a.train_elem, a.f64, ScoreCall{&a, out});
}

}  // namespace trustattr::cpu::TA_ISA_NS
