#include "gaussian_table.h"

#include "sketch_rng.h"

namespace trustattr {

const at::Tensor& gaussian_table_cpu() {
  static const at::Tensor table = [] {
    at::Tensor u = (at::arange(kGaussianTableSize, at::TensorOptions().dtype(at::kDouble)) + 0.5) /
                   static_cast<double>(kGaussianTableSize);
    return at::special_ndtri(u).to(at::kFloat).contiguous();
  }();
  return table;
}

}  // namespace trustattr
