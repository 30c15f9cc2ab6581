// The trustattr op library: every schema, in one place, plus the backend-free
// ops. Backend kernels register themselves with TORCH_LIBRARY_IMPL in
// csrc/cpu/*.cpp and csrc/cuda/*.cu. Importing trustattr._C runs all of it.
#include <Python.h>
#include <torch/library.h>

#include <optional>

#include "checks.h"
#include "cpu/sketch_cpu.h"
#include "sketch_ops.h"

namespace trustattr {

RandomMatrixFn& random_matrix_cuda_hook() {
  static RandomMatrixFn fn = nullptr;
  return fn;
}

namespace {

at::Tensor random_matrix(int64_t D, int64_t k, int64_t seed, c10::string_view kind,
                         int64_t feature_offset, int64_t nnz, std::optional<at::ScalarType> dtype,
                         std::optional<at::Device> device) {
  const SketchKind sk = check_sketch(kind, D, k, feature_offset, nnz, "random_matrix");
  const at::ScalarType dt = dtype.value_or(at::kFloat);
  TA_CHECK_ARG(dt == at::kFloat || dt == at::kDouble, "random_matrix", "dtype",
               "must be float32 or float64, got ", dt);
  const at::Device dev = device.value_or(at::Device(at::kCPU));
  if (dev.is_cuda()) {
    RandomMatrixFn fn = random_matrix_cuda_hook();
    TORCH_CHECK(fn != nullptr, "random_matrix: argument 'device' is ", dev,
                " but trustattr._C was built without CUDA kernels");
    return fn(D, k, seed, sk, feature_offset, nnz, dt, dev);
  }
  TA_CHECK_ARG(dev.is_cpu(), "random_matrix", "device", "must be cpu or cuda, got ", dev);
  return random_matrix_cpu(D, k, seed, sk, feature_offset, nnz, dt, dev);
}

std::string cpu_isa() { return cpu::sketch_isa(); }

bool has_cuda_kernels() { return random_matrix_cuda_hook() != nullptr; }

}  // namespace

TORCH_LIBRARY(trustattr, m) {
  // Random projections (kernel issue). Entry (d, j) of R is a pure function of
  // (seed, kind, feature_offset + d, j); see sketch_rng.h.
  m.def("project(Tensor x, int k, int seed, str kind=\"rademacher\", int feature_offset=0, "
        "int nnz=1) -> Tensor");
  m.def("project_t(Tensor y, int D, int seed, str kind=\"rademacher\", int feature_offset=0, "
        "int nnz=1) -> Tensor");
  m.def("random_matrix(int D, int k, int seed, str kind=\"rademacher\", int feature_offset=0, "
        "int nnz=1, ScalarType? dtype=None, Device? device=None) -> Tensor");
  // Sketches of a linear layer's per-sample gradients G_n = sum_t g[n,t] a[n,t]^T, never
  // forming G_n, and scoring of train features against queries (issue 5); see
  // csrc/cpu/grad_sketch_impl.h, score_impl.h, topk_impl.h and datainf_impl.h.
  m.def("project_factored(Tensor a, Tensor g, int k_in, int k_out, int seed, Tensor? segments=None, "
        "int num_segments=-1) -> Tensor");
  m.def("project_outer(Tensor a, Tensor g, int k, int seed, int feature_offset=0, "
        "Tensor? segments=None, int num_segments=-1) -> Tensor");
  m.def("segment_sum(Tensor x, Tensor segments, int num_segments) -> Tensor");
  m.def("score(Tensor train, Tensor query, bool normalize=False) -> Tensor");
  m.def("topk_score(Tensor train, Tensor query, int topk, bool normalize=False, bool largest=True) "
        "-> (Tensor values, Tensor indices)");
  m.def("datainf_scores(Tensor train, Tensor query, float? damping=None, int[]? blocks=None) -> Tensor");
  // Introspection.
  m.def("cpu_isa() -> str", &cpu_isa);
  m.def("has_cuda_kernels() -> bool", &has_cuda_kernels);
}

TORCH_LIBRARY_IMPL(trustattr, CompositeExplicitAutograd, m) {
  m.impl("random_matrix", &random_matrix);
}

}  // namespace trustattr

// An empty Python module: `import trustattr._C` only runs the registrations above.
extern "C" PyObject* PyInit__C(void) {
  static PyModuleDef module = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, nullptr};
  return PyModule_Create(&module);
}
