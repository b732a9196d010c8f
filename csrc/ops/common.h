// Small kernels shared by several ops.
#pragma once
#include <cstdint>

#include "pyface/cpu_isa.h"

namespace pyface {

// out[i] = 1 / max(||x_i||_2, eps) for x [n, d] (row-major) of dtype `dtype`
// (pyface::DType code); out is float32 [n], float64 for float64 input.
struct RowInvNormArgs {
  const void* x;
  int64_t n, d;
  int dtype;
  float eps;
  void* out;
};

PYFACE_CPU_KERNELS(void row_inv_norm_cpu(const RowInvNormArgs& a);)
#ifdef PYFACE_WITH_CUDA
void row_inv_norm_cuda(const RowInvNormArgs& a, void* stream);
#endif

}  // namespace pyface
