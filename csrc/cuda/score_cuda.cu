// CUDA launchers of score, topk_score and datainf_scores, and their
// registration. Same checks and messages as the CPU launchers. Train rows are
// read in place (any strides, any float dtype); the queries are converted once
// to the compute type (float64 when either input is float64, else float32).
//
// score: one pass of the score kernel (score.cu) writing [N, M].
// topk_score: train streamed in chunks of rows (M x chunk <= 2^24 scores); per
//   chunk the kernel writes the [M, chunk] scores, the running [M, topk] best
//   are prepended, and a stable sort along each query row keeps the first topk.
//   The kept candidates always precede the chunk and have smaller row indices,
//   so a stable sort breaks ties by the smaller index; NaN ranks as torch.sort
//   ranks it (above every number when largest, below when not) -- the order of
//   the reference and the CPU kernel. The result is the exact top-k of the same
//   scores `score` returns, bit for bit (one dot sequence, score.cu).
// datainf_scores: the passes of datainf.cu; the [rows, blocks] per-row
//   statistics are kept for groups of whole chunks (<= 2^24 values at a time).
#include <ATen/ATen.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include <algorithm>
#include <tuple>
#include <vector>

#include "../checks.h"
#include "attr_launch_cuda.h"

namespace trustattr {
namespace {

constexpr int64_t kTopkScores = int64_t(1) << 24;  // scores per merge step
constexpr int64_t kTopkMinRows = 1024;
constexpr int64_t kStatsValues = int64_t(1) << 24;  // DataInf per-row statistics held at once

// Kernel arguments for all train rows against the queries q [m, k] (compute type, contiguous).
cuda::ScoreParams score_params(const at::Tensor& train, const at::Tensor& q, bool normalize) {
  cuda::ScoreParams p{};
  p.train = matrix_view(train);
  p.row_begin = 0;
  p.n = train.size(0);
  p.k = train.size(1);
  p.query = q.data_ptr();
  p.m = q.size(0);
  p.f64 = q.scalar_type() == at::kDouble;
  p.normalize = normalize;
  p.negate = false;
  return p;
}

at::Tensor score_cuda(const at::Tensor& train, const at::Tensor& query, bool normalize) {
  check_score_pair(train, query, "score", false);
  check_cuda(train, "score", "train");
  const c10::cuda::CUDAGuard guard(train.device());
  const at::ScalarType dt = score_dtype(train, query);
  at::Tensor out = at::empty({train.size(0), query.size(0)}, train.options().dtype(dt));
  if (out.numel() == 0) return out;
  const at::Tensor q = query.to(dt).contiguous();
  cuda::ScoreParams p = score_params(train, q, normalize);
  p.out = out.data_ptr();
  p.out_stride_row = query.size(0);
  p.out_stride_query = 1;
  C10_CUDA_CHECK(cuda::launch_score(p, current_stream()));
  return out;
}

std::tuple<at::Tensor, at::Tensor> topk_score_cuda(const at::Tensor& train, const at::Tensor& query,
                                                   int64_t topk, bool normalize, bool largest) {
  check_topk_score(train, query, topk);
  check_cuda(train, "topk_score", "train");
  const c10::cuda::CUDAGuard guard(train.device());
  const at::ScalarType dt = score_dtype(train, query);
  const int64_t n = train.size(0), m = query.size(0);
  at::Tensor values = at::empty({m, topk}, train.options().dtype(dt));
  at::Tensor indices = at::empty({m, topk}, train.options().dtype(at::kLong));
  if (m == 0) return {values, indices};

  const at::Tensor q = query.to(dt).contiguous();
  cuda::ScoreParams p = score_params(train, q, normalize);
  const int64_t chunk = std::min(n, std::max({kTopkScores / m, kTopkMinRows, topk}));
  at::Tensor best_values, best_indices;  // [m, kept], best first
  for (int64_t r0 = 0; r0 < n; r0 += chunk) {
    const int64_t rows = std::min(chunk, n - r0);
    at::Tensor scores = at::empty({m, rows}, values.options());
    p.row_begin = r0;
    p.n = rows;
    p.out = scores.data_ptr();
    p.out_stride_row = 1;
    p.out_stride_query = rows;
    C10_CUDA_CHECK(cuda::launch_score(p, current_stream()));
    at::Tensor ids = at::arange(r0, r0 + rows, indices.options()).unsqueeze(0).expand({m, rows});
    if (best_values.defined()) {
      scores = at::cat({best_values, scores}, 1);
      ids = at::cat({best_indices, ids}, 1);
    }
    const auto sorted = at::sort(scores, /*stable=*/true, /*dim=*/1, /*descending=*/largest);
    const int64_t keep = std::min(topk, scores.size(1));
    best_values = std::get<0>(sorted).narrow(1, 0, keep);
    best_indices = at::gather(ids, 1, std::get<1>(sorted).narrow(1, 0, keep));
  }
  values.copy_(best_values);
  indices.copy_(best_indices);
  return {values, indices};
}

// DataInf's chunks per group: as many whole chunks as keep the per-row
// statistics [rows, num_blocks] within kStatsValues (at least one).
int64_t chunks_per_group(int64_t chunk, int64_t num_blocks) {
  return std::max<int64_t>(1, kStatsValues / (chunk * num_blocks));
}

// Runs body(c_first, chunks, row_begin, rows) for the groups of chunks in order.
template <typename Body>
void for_chunk_groups(int64_t n, int64_t chunk, int64_t num_blocks, Body&& body) {
  const int64_t chunks = (n + chunk - 1) / chunk;
  const int64_t group = chunks_per_group(chunk, num_blocks);
  for (int64_t c0 = 0; c0 < chunks; c0 += group) {
    const int64_t count = std::min(group, chunks - c0);
    const int64_t row_begin = c0 * chunk;
    body(c0, count, row_begin, std::min(n, (c0 + count) * chunk) - row_begin);
  }
}

at::Tensor datainf_scores_cuda(const at::Tensor& train, const at::Tensor& query,
                               std::optional<double> damping, at::OptionalIntArrayRef blocks) {
  const std::vector<int64_t> bounds = check_datainf_scores(train, query, damping, blocks);
  check_cuda(train, "datainf_scores", "train");
  const c10::cuda::CUDAGuard guard(train.device());
  const at::ScalarType dt = score_dtype(train, query);
  const int64_t n = train.size(0), k = train.size(1);
  const int64_t num_blocks = static_cast<int64_t>(bounds.size()) - 1;
  const at::TensorOptions doubles = train.options().dtype(at::kDouble);
  const cudaStream_t stream = current_stream();

  const at::Tensor v = query.to(dt).contiguous();  // [k]
  const at::Tensor bounds_dev = at::tensor(bounds, at::kLong).to(train.device());
  const int64_t chunk = std::max<int64_t>(4096, (n + 255) / 256);
  const int64_t chunks = (n + chunk - 1) / chunk;
  const int64_t group_rows = std::min(n, chunks_per_group(chunk, num_blocks) * chunk);
  at::Tensor stats = at::empty({group_rows * num_blocks}, doubles);
  at::Tensor lambda = at::empty({num_blocks}, doubles);

  cuda::DatainfRows rows{};
  rows.train = matrix_view(train);
  rows.f64 = dt == at::kDouble;
  rows.k = k;
  rows.bounds = bounds_dev.data_ptr<int64_t>();
  rows.num_blocks = num_blocks;
  rows.v = v.data_ptr();

  if (damping.has_value()) {  // pass 0 only for the default damping
    C10_CUDA_CHECK(cuda::launch_datainf_lambda(nullptr, 0, rows.bounds, num_blocks, n, *damping,
                                               lambda.data_ptr<double>(), stream));
  } else {
    at::Tensor partial = at::empty({chunks * num_blocks}, doubles);
    for_chunk_groups(n, chunk, num_blocks, [&](int64_t c0, int64_t count, int64_t row_begin, int64_t nrows) {
      C10_CUDA_CHECK(cuda::launch_datainf_row_stats(rows, row_begin, nrows, nullptr, stats.data_ptr<double>(),
                                                    stream));
      C10_CUDA_CHECK(cuda::launch_datainf_chunk_sums(stats.data_ptr<double>(), num_blocks, row_begin, n, chunk,
                                                     c0, count, partial.data_ptr<double>(), stream));
    });
    C10_CUDA_CHECK(cuda::launch_datainf_lambda(partial.data_ptr<double>(), chunks, rows.bounds, num_blocks, n,
                                               -1.0, lambda.data_ptr<double>(), stream));
  }

  // pass 1: coefficients and the per-chunk weighted sums w, then h.
  at::Tensor w = at::empty({chunks * k}, doubles);
  for_chunk_groups(n, chunk, num_blocks, [&](int64_t c0, int64_t count, int64_t row_begin, int64_t nrows) {
    C10_CUDA_CHECK(cuda::launch_datainf_row_stats(rows, row_begin, nrows, lambda.data_ptr<double>(),
                                                  stats.data_ptr<double>(), stream));
    C10_CUDA_CHECK(cuda::launch_datainf_weighted_sums(rows, stats.data_ptr<double>(), row_begin, n, chunk, c0,
                                                      count, w.data_ptr<double>(), stream));
  });
  at::Tensor h = at::empty({1, k}, train.options().dtype(dt));
  C10_CUDA_CHECK(cuda::launch_datainf_h(rows, w.data_ptr<double>(), chunks, n, lambda.data_ptr<double>(),
                                        h.data_ptr(), stream));

  // pass 2: score_i = -<h, g_i>.
  at::Tensor out = at::empty({n}, train.options().dtype(dt));
  cuda::ScoreParams p = score_params(train, h, false);
  p.negate = true;
  p.out = out.data_ptr();
  p.out_stride_row = 1;
  p.out_stride_query = 0;
  C10_CUDA_CHECK(cuda::launch_score(p, stream));
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(trustattr, CUDA, m) {
  m.impl("score", &score_cuda);
  m.impl("topk_score", &topk_score_cuda);
  m.impl("datainf_scores", &datainf_scores_cuda);
}

}  // namespace trustattr
