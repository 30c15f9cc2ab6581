// Counter-based randomness for every sketch in trustattr.
//
// Entry (d, j) of the implied D x k projection matrix is a pure function of
// (seed, kind, d, j) -- never of the batch size, the thread count, the tile
// shape, the device or k itself (except for `sjlt`, whose buckets live in
// [0, k)). The same functions run on the host (CPU kernels, tests) and on the
// device (CUDA kernels); `trustattr/reference/rng.py` re-implements them in
// PyTorch integer arithmetic and the tests check all three bit for bit.
//
//   mix64(z)        = SplitMix64 finalizer (Stafford "Mix13"):
//                       z ^= z >> 30; z *= 0xBF58476D1CE4E5B9;
//                       z ^= z >> 27; z *= 0x94D049BB133111EB; z ^= z >> 31
//   seed_key        = mix64(uint64(seed) ^ KIND_SALT[kind])
//   row_key(d)      = mix64(seed_key + uint64(d) * GOLDEN)        d = feature_offset + local index
//   word(d, c)      = mix64(row_key(d) + uint64(c) * WEYL)         64 random bits
//
//   rademacher: s = bit (j % 64) of word(d, j / 64);  R[d, j] = (s ? -1 : +1) / sqrt(k)
//   gaussian:   q = 16-bit field (j % 4) of word(d, j / 4);  R[d, j] = Q[q] / sqrt(k),
//               Q[q] = Phi^-1((q + 0.5) / 65536) rounded to float32 (a 65,536-level
//               quantile discretisation of N(0, 1); variance 0.99998, |Q| <= 4.325)
//   sjlt:       for t in [0, nnz): h = word(d, t); block t = [t*k/nnz, (t+1)*k/nnz);
//               bucket = lo_t + ((h & 0xFFFFFFFF) * size_t) >> 32;  sign = bit 63 of h;
//               R[d, bucket] = (sign ? -1 : +1) / sqrt(nnz)  (distinct buckets, needs nnz <= k)
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define TA_HD __host__ __device__ __forceinline__
#else
#define TA_HD inline __attribute__((always_inline))
#endif

namespace trustattr {

enum class SketchKind : int { kRademacher = 0, kGaussian = 1, kSjlt = 2 };

constexpr uint64_t kGolden = 0x9E3779B97F4A7C15ULL;  // row stride of the Weyl sequence
constexpr uint64_t kWeyl = 0xD1B54A32D192ED03ULL;    // column-word stride
constexpr int kGaussianTableBits = 16;
constexpr int kGaussianTableSize = 1 << kGaussianTableBits;

TA_HD uint64_t kind_salt(SketchKind kind) {
  switch (kind) {
    case SketchKind::kRademacher: return 0x5241444D41434845ULL;  // "RADMACHE"
    case SketchKind::kGaussian: return 0x4741555353494E31ULL;    // "GAUSSIN1"
    default: return 0x534A4C5453504152ULL;                       // "SJLTSPAR"
  }
}

TA_HD uint64_t mix64(uint64_t z) {
  z ^= z >> 30;
  z *= 0xBF58476D1CE4E5B9ULL;
  z ^= z >> 27;
  z *= 0x94D049BB133111EBULL;
  z ^= z >> 31;
  return z;
}

TA_HD uint64_t seed_key(int64_t seed, SketchKind kind) {
  return mix64(static_cast<uint64_t>(seed) ^ kind_salt(kind));
}

TA_HD uint64_t row_key(uint64_t key, int64_t d) {
  return mix64(key + static_cast<uint64_t>(d) * kGolden);
}

TA_HD uint64_t word_of(uint64_t rkey, int64_t c) {
  return mix64(rkey + static_cast<uint64_t>(c) * kWeyl);
}

// Rademacher sign of column j in a row: true means -1.
TA_HD bool rademacher_negative(uint64_t rkey, int64_t j) {
  return (word_of(rkey, j >> 6) >> (j & 63)) & 1ULL;
}

// Index into the Gaussian quantile table for column j in a row.
TA_HD uint32_t gaussian_index(uint64_t rkey, int64_t j) {
  return static_cast<uint32_t>((word_of(rkey, j >> 2) >> (16 * (j & 3))) & 0xFFFFULL);
}

// One nonzero of an SJLT column-row: the t-th of nnz buckets of feature row d.
struct SjltHit {
  int64_t bucket;
  bool negative;
};

// Block t of the k outputs: [lo, lo + size) with lo = t*k/nnz.
TA_HD int64_t sjlt_block_start(int64_t t, int64_t nnz, int64_t k) { return (t * k) / nnz; }

// The t-th hit given its block [lo, lo + size) (hoist the divisions out of loops).
TA_HD SjltHit sjlt_hit_in_block(uint64_t rkey, int64_t t, int64_t lo, uint64_t size) {
  const uint64_t h = word_of(rkey, t);
  const int64_t offset = static_cast<int64_t>(((h & 0xFFFFFFFFULL) * size) >> 32);
  return SjltHit{lo + offset, static_cast<bool>(h >> 63)};
}

TA_HD SjltHit sjlt_hit(uint64_t rkey, int64_t t, int64_t nnz, int64_t k) {
  const int64_t lo = sjlt_block_start(t, nnz, k);
  const int64_t hi = sjlt_block_start(t + 1, nnz, k);
  return sjlt_hit_in_block(rkey, t, lo, static_cast<uint64_t>(hi - lo));
}

// Seed of the index-th independent sketch derived from one user seed (R_in is
// index 0 and R_out index 1 in project_factored; the engine derives one seed
// per tracked layer the same way). A pure function, mirrored bit for bit by
// trustattr.reference.derive_seed:
//   derive_seed(seed, index) = int64(mix64(uint64(seed) ^ (uint64(index) * GOLDEN)))
TA_HD int64_t derive_seed(int64_t seed, int64_t index) {
  return static_cast<int64_t>(
      mix64(static_cast<uint64_t>(seed) ^ (static_cast<uint64_t>(index) * kGolden)));
}

}  // namespace trustattr
