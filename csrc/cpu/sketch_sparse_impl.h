// SJLT sketch drivers: the nnz hits (bucket, sign) of each feature are hashed
// eight features at a time in vector lanes and reused by every row; project
// scatters rows into buckets, project_t gathers them back. Part of
// sketch_cpu_impl.h (namespace TA_ISA_NS).
#pragma once

#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include <cstdint>

#include "simd_impl.h"

namespace trustattr::cpu::TA_ISA_NS {
namespace {

constexpr int64_t kSparseChunk = 2048; // features per block of SJLT hits
constexpr int64_t kStageStride = kSparseChunk + 32;  // padded row stride of the sjlt staging buffer
constexpr int64_t kSparseRows = 8;     // rows per work item (sjlt transposed)

// Features per SJLT work item, a function of k only (never of the batch size or
// thread count). Large against k, so zeroing and writing out the [rows, k]
// accumulator stays a small share of an item's work.
inline int64_t sparse_group_size(int64_t k) {
  int64_t size = 32768;
  while (size < 16 * k) size *= 2;
  return size;
}

// Fills bucket/sign for features [f0, f0 + kc), nnz hits each. starts holds
// the nnz + 1 block boundaries t*k/nnz (see SjltHits). The hashes run
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

// Per-thread hits of up to `features` features: bucket/sign [features, nnz] and
// the nnz + 1 block boundaries t*k/nnz.
template <typename T>
struct SjltHits {
  int32_t* bucket;
  T* sign;
  int64_t* starts;
  SjltHits(const SketchArgs& a, int64_t features)
      : bucket(scratch<int32_t>(features * a.nnz)),
        sign(scratch<T>(features * a.nnz)),
        starts(scratch<int64_t>(a.nnz + 1)) {
    for (int64_t t = 0; t <= a.nnz; ++t) starts[t] = sjlt_block_start(t, a.nnz, a.k);
  }
  ~SjltHits() {
    free(bucket);
    free(sign);
    free(starts);
  }
  SjltHits(const SjltHits&) = delete;
  SjltHits& operator=(const SjltHits&) = delete;
  // The hits of features [f0, f0 + kc), kc <= features.
  void fill(const SketchArgs& a, uint64_t key, int64_t f0, int64_t kc) {
    sjlt_hits<T>(a, key, starts, f0, kc, bucket, sign);
  }
};

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

// A few rows that do not fill a SIMD vector go one at a time: acc[bucket] += sign * x in
// feature order, with acc (k values, L1-resident) written straight into the group's
// partial sums. The signs are +-1, so every term is exact and each row gets the same
// sums, in the same order, as a vector lane would give it: results never depend on
// which path a row took (tests check this bit for bit).
template <Elem E, typename T>
void sparse_forward_rows(const SketchArgs& a, const void* x, const SjltHits<T>& hits, bool contiguous,
                         int64_t f_begin, int64_t f_end, int64_t r_begin, int64_t r_end, T* stage,
                         T* partial_group) {
  const int64_t k = a.k, nnz = a.nnz;
  for (int64_t r = r_begin; r < r_end; ++r) {
    T* acc = partial_group + r * k;
    for (int64_t j = 0; j < k; ++j) acc[j] = T(0);
    const int64_t row_base = r * a.stride_row;
    for (int64_t f0 = f_begin; f0 < f_end; f0 += kSparseChunk) {
      const int64_t kc = f_end - f0 < kSparseChunk ? f_end - f0 : kSparseChunk;
      const T* xs = stage;
      if (contiguous) {
        xs = static_cast<const T*>(x) + row_base + f0;
      } else {
        stage_row<E, T>(x, row_base + f0 * a.stride_col, a.stride_col, kc, stage);
      }
      const int32_t* cb = hits.bucket + (f0 - f_begin) * nnz;
      const T* cs = hits.sign + (f0 - f_begin) * nnz;
      if (nnz == 1) {
        for (int64_t p = 0; p < kc; ++p) acc[cb[p]] += cs[p] * xs[p];
      } else {
        for (int64_t p = 0; p < kc; ++p)
          for (int64_t t = 0; t < nnz; ++t) acc[cb[p * nnz + t]] += cs[p * nnz + t] * xs[p];
      }
    }
  }
}

// SJLT forward. A work item is one feature group: its hits are hashed once and
// reused by every row. Full SIMD vectors of rows (16 float / 8 double) are
// transposed in registers into xt[feature][row lane] (read in place when rows are
// contiguous and native, staged row by row otherwise) and the scatter-add updates
// acc[bucket][row lane] with one vector FMA per (feature, hit), up to 4 row vectors
// per pass so acc stays in L2. A few leftover rows go row by row (sparse_forward_rows).
// Each row is summed on its own in feature order, as every path does.
template <Elem E, typename T>
void sparse_forward(const SketchArgs& a, const void* x, int64_t rows, T* out) {
  using V = typename VecOf<T>::type;
  constexpr int L = VecOf<T>::lanes;
  const int64_t d = a.d, k = a.k, nnz = a.nnz;
  const int64_t group_size = sparse_group_size(k);
  const int64_t groups = ceil_div(d, group_size);
  // Row vectors per pass: as many as keep acc within ~256 KiB (and the batch needs),
  // at most 256 bytes of rows per bucket (64 float rows: 4 zmm, 8 ymm, 16 xmm).
  constexpr int64_t kMaxVecs = 256 / static_cast<int64_t>(sizeof(V));
  int64_t vecs = (256 * 1024) / (k * static_cast<int64_t>(sizeof(V)));
  vecs = vecs < 1 ? 1 : (vecs > kMaxVecs ? kMaxVecs : vecs);
  vecs = vecs < ceil_div(rows, L) ? vecs : ceil_div(rows, L);
  const int64_t rows_per_pass = vecs * L;
  const int64_t count = rows * k;
  T* partial = scratch<T>(groups * count);
  const uint64_t key = a.key;
  const int nt = a.num_threads;
  constexpr bool native = (E == Elem::kF32 && sizeof(T) == 4) || (E == Elem::kF64 && sizeof(T) == 8);
  const bool contiguous = native && a.stride_col == 1;  // rows are read in place, not staged
  // Rows in SIMD vectors; a few leftover rows (< 3/8 of a vector: measured break-even, a partly
  // filled vector costs as much as a full one) go row by row instead.
  const int64_t leftover = rows % L;
  const int64_t vector_rows = leftover * 8 < L * 3 ? rows - leftover : rows;

#pragma omp parallel num_threads(nt)
  {
    SjltHits<T> hits(a, group_size);
    V* xt = scratch<V>(vecs * kSparseChunk);  // [row vector][feature] of row lanes
    V* acc = scratch<V>(k * vecs);             // [bucket][row vector] of row lanes
    T* stage = scratch<T>(L * kStageStride);   // [row lane][feature], padded rows
    V block[L];
#pragma omp for schedule(dynamic, 1)
    for (int64_t g = 0; g < groups; ++g) {
      const int64_t f_begin = g * group_size;
      const int64_t f_end = f_begin + group_size < d ? f_begin + group_size : d;
      hits.fill(a, key, f_begin, f_end - f_begin);
      for (int64_t r_begin = 0; r_begin < vector_rows; r_begin += rows_per_pass) {
        const int64_t pass_rows = vector_rows - r_begin < rows_per_pass ? vector_rows - r_begin : rows_per_pass;
        const int64_t used_vecs = ceil_div(pass_rows, L);
        for (int64_t j = 0; j < k * vecs; ++j) acc[j] = V{};
        for (int64_t f0 = f_begin; f0 < f_end; f0 += kSparseChunk) {
          const int64_t kc = f_end - f0 < kSparseChunk ? f_end - f0 : kSparseChunk;
          for (int64_t v = 0; v < used_vecs; ++v) {
            const int64_t lanes = pass_rows - v * L < L ? pass_rows - v * L : L;
            // Native contiguous rows filling a vector are transposed straight from x. Others
            // are staged one row at a time first: rows of a power-of-two length share cache
            // sets, so converting L of them in lock step would thrash L1.
            const bool in_place = contiguous && lanes == L && kc % L == 0;
            const T* src = in_place ? static_cast<const T*>(x) + (r_begin + v * L) * a.stride_row + f0 : stage;
            const int64_t src_stride = in_place ? a.stride_row : kStageStride;
            for (int64_t l = 0; l < lanes; ++l) {
              const int64_t row_base = (r_begin + v * L + l) * a.stride_row;
              if (!in_place)
                stage_row<E, T>(x, row_base + f0 * a.stride_col, a.stride_col, kc, stage + l * kStageStride);
              // Each row is read in runs of kSparseChunk features: prefetch the next
              // run into L2 now, so the next chunk does not wait on DRAM latency.
              if (a.stride_col == 1 && f0 + kc < f_end)
                prefetch_run(x, (row_base + f0 + kc) * elem_size<E>(),
                             (f_end - f0 - kc < kc ? f_end - f0 - kc : kc) * elem_size<E>());
            }
            if (!in_place)
              for (int64_t l = lanes; l < L; ++l) memset(stage + l * kStageStride, 0, sizeof(T) * kStageStride);
            for (int64_t p0 = 0; p0 < kc; p0 += L) {
              for (int l = 0; l < L; ++l) memcpy(&block[l], src + l * src_stride + p0, sizeof(V));
              transpose_block<T>(block);
              V* xv = xt + v * kSparseChunk + p0;
              if (kc - p0 >= L) {
                for (int i = 0; i < L; ++i) xv[i] = block[i];
              } else {
                for (int64_t i = 0; i < kc - p0; ++i) xv[i] = block[i];
              }
            }
          }
          const int32_t* cb = hits.bucket + (f0 - f_begin) * nnz;
          const T* cs = hits.sign + (f0 - f_begin) * nnz;
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
      sparse_forward_rows<E, T>(a, x, hits, contiguous, f_begin, f_end, vector_rows, rows, stage,
                                partial + g * count);
    }
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
  const uint64_t key = a.key;
  const T scale = static_cast<T>(a.scale);
  const int nt = a.num_threads;

#pragma omp parallel num_threads(nt)
  {
    SjltHits<T> hits(a, kSparseChunk);
    const int32_t* bucket = hits.bucket;
    const T* sign = hits.sign;
#pragma omp for schedule(dynamic, 1)
    for (int64_t item = 0; item < chunks * row_groups; ++item) {
      const int64_t ch = item / row_groups, rg = item % row_groups;
      const int64_t f0 = ch * kSparseChunk;
      const int64_t kc = d - f0 < kSparseChunk ? d - f0 : kSparseChunk;
      const int64_t r_begin = rg * kSparseRows;
      const int64_t r_end = r_begin + kSparseRows < rows ? r_begin + kSparseRows : rows;
      hits.fill(a, key, f0, kc);
      for (int64_t r = r_begin; r < r_end; ++r) {
        const int64_t base = r * a.stride_row;
        T* orow = out + r * d + f0;
        for (int64_t p = 0; p < kc; ++p) {
          T acc = T(0);
          for (int64_t t = 0; t < nnz; ++t)
            acc += sign[p * nnz + t] *
                   load_elem<E, T>(y, base + bucket[p * nnz + t] * a.stride_col);
          orow[p] = acc * scale;
        }
      }
    }
  }
}

}  // namespace
}  // namespace trustattr::cpu::TA_ISA_NS
