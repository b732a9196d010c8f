#include <cmath>

#include "ops/common.h"
#include "pyface/common.h"
#include "pyface/parallel.h"

PYFACE_CPU_NAMESPACE_BEGIN

namespace {
template <typename T>
double sum_squares(const T* __restrict row, int64_t d) {
  double acc = 0.0;
#pragma omp simd reduction(+ : acc)
  for (int64_t k = 0; k < d; ++k) {
    const double v = to_double(row[k]);
    acc += v * v;
  }
  return acc;
}

template <typename T, typename O>
void row_inv_norm_impl(const T* x, int64_t n, int64_t d, float eps, O* out) {
  parallel_for(n, 256, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const double nrm = std::sqrt(sum_squares(x + i * d, d));
      out[i] = static_cast<O>(1.0 / (nrm > eps ? nrm : static_cast<double>(eps)));
    }
  });
}
}  // namespace

void row_inv_norm_cpu(const RowInvNormArgs& a) {
  switch (static_cast<DType>(a.dtype)) {
    case DType::Float32:
      row_inv_norm_impl(static_cast<const float*>(a.x), a.n, a.d, a.eps, static_cast<float*>(a.out));
      break;
    case DType::Float64:
      row_inv_norm_impl(static_cast<const double*>(a.x), a.n, a.d, a.eps, static_cast<double*>(a.out));
      break;
    case DType::Float16:
      row_inv_norm_impl(static_cast<const f16_t*>(a.x), a.n, a.d, a.eps, static_cast<float*>(a.out));
      break;
    case DType::BFloat16:
      row_inv_norm_impl(static_cast<const bf16_t*>(a.x), a.n, a.d, a.eps, static_cast<float*>(a.out));
      break;
  }
}

PYFACE_CPU_NAMESPACE_END
