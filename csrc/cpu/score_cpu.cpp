// CPU launchers of score, topk_score and datainf_scores: argument checks,
// output allocation, and the hand-off to the per-ISA streaming kernels
// (score_impl.h, topk_impl.h and datainf_impl.h document their algorithms).
// Train features are read in place, so a tensor over a memory-mapped file
// (torch.from_numpy(np.memmap(...)) or torch.from_file) is streamed, never copied.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <tuple>

#include "../checks.h"
#include "attr_cpu.h"
#include "attr_launch.h"

namespace trustattr {
namespace {

// query [M, k] in the compute dtype, rows zero-padded to a multiple of 16 columns.
at::Tensor padded_queries(const at::Tensor& query, at::ScalarType dtype) {
  const int64_t k = query.size(1), k_pad = (k + 15) / 16 * 16;
  at::Tensor q = at::zeros({query.size(0), k_pad}, query.options().dtype(dtype));
  q.narrow(1, 0, k).copy_(query);
  return q;
}

// The kernel arguments for train (read through train_view) and the padded queries.
cpu::ScoreArgs score_args(const at::Tensor& train, const at::Tensor& q_pad, const at::Tensor& train_view,
                          bool normalize) {
  cpu::ScoreArgs s{};
  s.train = train_view.data_ptr();
  s.train_stride = train_view.stride(0);
  s.train_elem = elem_of(train.scalar_type());
  s.n = train.size(0);
  s.k = train.size(1);
  s.query = q_pad.data_ptr();
  s.query_stride = q_pad.size(1);
  s.m = q_pad.size(0);
  s.f64 = q_pad.scalar_type() == at::kDouble;
  s.normalize = normalize;
  s.num_threads = at::get_num_threads();
  return s;
}

at::Tensor score_cpu(const at::Tensor& train, const at::Tensor& query, bool normalize) {
  check_score_pair(train, query, "score", false);
  const at::ScalarType dt = score_dtype(train, query);
  const at::Tensor q = padded_queries(query, dt), view = unit_last_stride(train);
  at::Tensor out = at::empty({train.size(0), query.size(0)}, train.options().dtype(dt));
  if (out.numel() == 0) return out;
  const cpu::ScoreArgs s = score_args(train, q, view, normalize);
  cpu::score_run(s, out.data_ptr());
  return out;
}

std::tuple<at::Tensor, at::Tensor> topk_score_cpu(const at::Tensor& train, const at::Tensor& query,
                                                  int64_t topk, bool normalize, bool largest) {
  check_topk_score(train, query, topk);
  const at::ScalarType dt = score_dtype(train, query);
  const at::Tensor q = padded_queries(query, dt), view = unit_last_stride(train);
  at::Tensor values = at::empty({query.size(0), topk}, train.options().dtype(dt));
  at::Tensor indices = at::empty({query.size(0), topk}, train.options().dtype(at::kLong));
  if (query.size(0) == 0) return {values, indices};
  cpu::TopkArgs t{};
  t.s = score_args(train, q, view, normalize);
  t.topk = topk;
  t.largest = largest;
  t.values = values.data_ptr();
  t.indices = indices.data_ptr<int64_t>();
  cpu::topk_score_run(t);
  return {values, indices};
}

at::Tensor datainf_scores_cpu(const at::Tensor& train, const at::Tensor& query,
                              std::optional<double> damping, at::OptionalIntArrayRef blocks) {
  const std::vector<int64_t> bounds = check_datainf_scores(train, query, damping, blocks);
  const at::ScalarType dt = score_dtype(train, query);
  const at::Tensor q = padded_queries(query.unsqueeze(0), dt), view = unit_last_stride(train);
  at::Tensor out = at::empty({train.size(0)}, train.options().dtype(dt));
  cpu::DatainfArgs d{};
  d.s = score_args(train, q, view, false);
  d.blocks = bounds.data();
  d.num_blocks = static_cast<int64_t>(bounds.size()) - 1;
  d.damping = damping.has_value() ? *damping : -1.0;
  d.out = out.data_ptr();
  cpu::datainf_run(d);
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(trustattr, CPU, m) {
  m.impl("score", &score_cpu);
  m.impl("topk_score", &topk_score_cpu);
  m.impl("datainf_scores", &datainf_scores_cpu);
}

}  // namespace trustattr
