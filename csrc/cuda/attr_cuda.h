// Plain-data interface of the CUDA kernels of issue 5 (no torch types).
//
// The torch launchers (grad_sketch_cuda.cu, score_cuda.cu) validate the
// tensors, fill these structs and call the launch_* functions on the current
// stream; every launch_* returns the first CUDA error of its launches.
//
//   grad_sketch.cu  token_outer: out[s] = sum over the tokens of the member rows
//                   of s of X[n, t, :] (x) Y[n, t, :] (the per-sample outer
//                   products behind project_factored and project_outer);
//                   segment_sum: out[s] = sum of the member rows of s
//   score.cu        score tiles: dot products (or cosines) of train rows with
//                   query rows, in one fixed summation order
//   datainf.cu      DataInf's per-row block statistics and fixed-order sums
//
// "Members" give every output row s its input rows, ascending:
// order[start[s] .. start[s + 1]). nullptr start/order means the identity
// (output row s is input row s). Sums over members never use atomics: each
// output value is summed by one thread in member order, so results are the same
// on every run and every GPU.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "../elem.h"

namespace trustattr::cuda {

// A matrix read in place: element (r, c) at data[r * stride_row + c * stride_col],
// of type elem.
struct MatrixView {
  const void* data;
  int64_t stride_row, stride_col;
  Elem elem;
};

// Tokens of a batch read in place: element (n, t, c) at
// data[n * stride_n + t * stride_t + c * stride_c].
struct TokensView {
  const void* data;
  int64_t stride_n, stride_t, stride_c;
};

struct Members {
  const int64_t* start;  // [rows_out + 1], or nullptr (identity)
  const int64_t* order;  // [n], or nullptr (identity)
};

// out[s * ldo + p * q_count + q] = scale * sum_{n in members(s)} sum_t X[n, t, p] * Y[n, t, q]
// for p < p_count, q < q_count. X and Y have any strides (elements) and element
// type `elem`; out is float, or double when elem == kF64.
struct TokenOuterParams {
  TokensView x, y;
  Elem elem;
  int64_t t;                 // tokens per input row
  int64_t p_count, q_count;  // columns of X and of Y taken
  Members members;
  int64_t rows_out;
  void* out;
  int64_t ldo;
  double scale;
};
cudaError_t launch_token_outer(const TokenOuterParams& p, cudaStream_t stream);

// out[s, c] = sum_{r in members(s)} x[r, c] (rows added in member order, starting
// from 0; float accumulation, double for kF64). out is contiguous [rows_out, k].
struct SegmentSumParams {
  MatrixView x;  // [R, k]
  int64_t k;
  Members members;  // never the identity here
  int64_t rows_out;
  void* out;
};
cudaError_t launch_segment_sum(const SegmentSumParams& p, cudaStream_t stream);

// Scores of train rows [row_begin, row_begin + n) against m query rows:
//   out[r * out_stride_row + q * out_stride_query] = sign * value(r, q),
// r the local row (0 .. n-1), value = <x_r, q_q>, or its cosine when normalize
// (0 when either norm is 0; computed in double). The dot of every (row, query)
// is one fixed sequence whatever n, m, row_begin or the tiling: a fused
// multiply-add chain over each 32-column chunk (from column 0), the chunk sums
// added in order. Norms use the same sequence.
struct ScoreParams {
  MatrixView train;  // [N, k]
  int64_t row_begin, n, k;
  const void* query;  // [m, k] contiguous, in the compute type (double when f64)
  int64_t m;
  bool f64;  // compute (and output) type: double, else float
  bool normalize;
  bool negate;  // sign = -1 (DataInf's last pass)
  void* out;
  int64_t out_stride_row, out_stride_query;
};
cudaError_t launch_score(const ScoreParams& p, cudaStream_t stream);

// ---- DataInf (datainf.cu); blocks are column boundaries [0, b1, ..., k] ----

// Rows [row_begin, row_begin + rows) of train, per block l:
//   s = ||g_il||^2, d = <v_l, g_il>   (compute type, fixed order; see datainf.cu)
//   out[(r - row_begin) * num_blocks + l] = lambda == nullptr ? s
//                                           : (lambda_l == 0 ? 0 : d / (lambda_l + s))
// in double. v (the query, compute type) is only read when lambda != nullptr.
struct DatainfRows {
  MatrixView train;  // [N, k]
  bool f64;
  int64_t k;
  const int64_t* bounds;  // device [num_blocks + 1]
  int64_t num_blocks;
  const void* v;
};
cudaError_t launch_datainf_row_stats(const DatainfRows& p, int64_t row_begin, int64_t rows,
                                     const double* lambda, double* out, cudaStream_t stream);

// partial[c * num_blocks + l] = sum of stats[(r - row_begin) * num_blocks + l] over the rows r
// of chunk c (rows [c * chunk, min(n, (c + 1) * chunk))), r ascending, for the chunks
// c_first .. c_first + chunks - 1 (whose rows all lie in the buffer starting at row_begin).
cudaError_t launch_datainf_chunk_sums(const double* stats, int64_t num_blocks, int64_t row_begin,
                                      int64_t n, int64_t chunk, int64_t c_first, int64_t chunks,
                                      double* partial, cudaStream_t stream);

// lambda[l] = damping >= 0 ? damping
//           : 0.1 * (sum_{c < chunks} partial[c * num_blocks + l]) / (n * width_l).
cudaError_t launch_datainf_lambda(const double* partial, int64_t chunks, const int64_t* bounds,
                                  int64_t num_blocks, int64_t n, double damping, double* lambda,
                                  cudaStream_t stream);

// w[c * k + j] = sum over the rows r of chunk c (ascending) of coef[r, l(j)] * g[r, j],
// in double, for the chunks c_first .. c_first + chunks - 1 (coef: the row-stats output
// with lambda, rows from row_begin).
cudaError_t launch_datainf_weighted_sums(const DatainfRows& p, const double* coef, int64_t row_begin,
                                         int64_t n, int64_t chunk, int64_t c_first, int64_t chunks,
                                         double* w, cudaStream_t stream);

// h[j] = lambda_l == 0 ? 0 : (n v[j] - sum_{c < chunks} w[c * k + j]) / (n lambda_l), l = l(j),
// written in the compute type.
cudaError_t launch_datainf_h(const DatainfRows& p, const double* w, int64_t chunks, int64_t n,
                             const double* lambda, void* h, cudaStream_t stream);

}  // namespace trustattr::cuda
