// The CPU sketch kernels, written once with GCC vector extensions and compiled
// once per instruction set (sketch_isa_*.cpp). Include only from those files:
// every function here lives in the namespace named by TA_ISA_NS so the
// variants never collide.
//
// Dense sketches (rademacher, gaussian) are a GEMM whose right operand is
// generated on the fly: for each chunk of kDenseChunk features, a panel of the
// random matrix ([chunk, NR] for NR = two SIMD vectors of columns) is written
// into a cache-resident buffer and multiplied with every row of the batch by a
// register-blocked micro-kernel (MR rows x NR columns of accumulators). One
// generated panel serves all rows, so the generator costs 1/N of the FLOPs.
//
// Determinism: a row's result depends only on (x row, seed, d, k, kind).
// Feature sums run in a fixed order (chunks in order; inside a chunk, features
// in order), and the number of feature groups summed separately is a function
// of (d, k) only -- never of the batch size or the thread count.
//
// Parts (each in namespace TA_ISA_NS): simd_impl.h (vector types, loads,
// scratch, transposes), sketch_panels_impl.h (micro-kernel, panel generators),
// sketch_dense_impl.h and sketch_sparse_impl.h (the drivers); this file cuts
// the batch into slabs of rows and picks the driver.
#pragma once

#include <cstdint>

#include "sketch_dense_impl.h"
#include "sketch_sparse_impl.h"

#ifndef TA_ISA_NS
#error "define TA_ISA_NS before including sketch_cpu_impl.h"
#endif

namespace trustattr::cpu::TA_ISA_NS {
namespace {

constexpr int64_t kRowSlab = 1024;  // rows per independent pass (bounds scratch memory)

// ------------------------------------------------------------------ entry

template <Elem E, typename T>
void run_typed(const SketchArgs& a) {
  const int64_t out_cols = a.transposed ? a.d : a.k;
  T* out = static_cast<T*>(a.out);
  for (int64_t r0 = 0; r0 < a.n; r0 += kRowSlab) {
    const int64_t rows = a.n - r0 < kRowSlab ? a.n - r0 : kRowSlab;
    const void* x = static_cast<const char*>(a.x) + r0 * a.stride_row * elem_size<E>();
    T* o = out + r0 * out_cols;
    if (a.kind == SketchKind::kSjlt) {
      if (a.transposed) sparse_transposed<E, T>(a, x, rows, o);
      else sparse_forward<E, T>(a, x, rows, o);
    } else {
      if (a.transposed) dense_transposed<E, T>(a, x, rows, o);
      else dense_forward<E, T>(a, x, rows, o);
    }
  }
}

}  // namespace

void run(const SketchArgs& a) {
  switch (a.elem) {
    case Elem::kF32: return run_typed<Elem::kF32, float>(a);
    case Elem::kF64: return run_typed<Elem::kF64, double>(a);
    case Elem::kBF16: return run_typed<Elem::kBF16, float>(a);
    default: return run_typed<Elem::kF16, float>(a);
  }
}

}  // namespace trustattr::cpu::TA_ISA_NS

// Defines sketch_run_<suffix> (sketch_cpu.h) in the sketch_isa_*.cpp file that
// includes this header: the run() of its instruction set.
#define TA_SKETCH_DEFINE_ENTRY_POINT(suffix)                                         \
  namespace trustattr::cpu {                                                         \
  void sketch_run_##suffix(const SketchArgs& args) { TA_ISA_NS::run(args); }         \
  }
