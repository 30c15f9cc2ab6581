// Plain-data interface of the CPU sketch kernels. The kernels themselves are
// compiled three times (AVX-512, AVX2, baseline) from sketch_cpu_impl.h and see
// no at::Tensor; the launcher (project_cpu.cpp) validates and fills this struct
// (its fields: sketch_call.h).
#pragma once

#include <cstdint>

#include "../sketch_call.h"

namespace trustattr::cpu {

struct SketchArgs : SketchCall {
  int num_threads;
};

// Writes args.out (does not accumulate). Picks the widest instruction set
// this CPU supports; every variant computes the same random matrix.
void sketch_run(const SketchArgs& args);

// Name of the instruction-set variant sketch_run uses on this CPU.
const char* sketch_isa();

// Per-ISA entry points (defined once per variant translation unit).
void sketch_run_avx512(const SketchArgs& args);
void sketch_run_avx2(const SketchArgs& args);
void sketch_run_baseline(const SketchArgs& args);

}  // namespace trustattr::cpu
