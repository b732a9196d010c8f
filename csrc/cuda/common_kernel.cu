#include "cuda_utils.cuh"
#include "ops/common.h"

namespace pyface {

namespace {
template <typename T, typename O>
__global__ void row_inv_norm_kernel(const T* x, int64_t n, int64_t d, float eps, O* out) {
  // One warp per row.
  const int64_t row = static_cast<int64_t>(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (row >= n) return;
  const T* p = x + row * d;
  O acc = 0;
  for (int64_t k = lane; k < d; k += 32) {
    const O v = static_cast<O>(p[k]);
    acc += v * v;
  }
  acc = warp_sum(acc);
  if (lane == 0) {
    const O nrm = sqrt(acc);
    out[row] = O(1) / (nrm > O(eps) ? nrm : O(eps));
  }
}

template <typename T, typename O = float>
void launch(const void* x, int64_t n, int64_t d, float eps, void* out, cudaStream_t st) {
  if (n == 0) return;
  constexpr int kThreads = 256;
  row_inv_norm_kernel<T, O>
      <<<ceil_div(n, kThreads / 32), kThreads, 0, st>>>(static_cast<const T*>(x), n, d, eps, static_cast<O*>(out));
  PYFACE_CUDA_CHECK_LAUNCH("row_inv_norm");
}
}  // namespace

void row_inv_norm_cuda(const RowInvNormArgs& a, void* stream) {
  cudaStream_t st = as_stream(stream);
  switch (static_cast<DType>(a.dtype)) {
    case DType::Float32: launch<float>(a.x, a.n, a.d, a.eps, a.out, st); break;
    case DType::Float64: launch<double, double>(a.x, a.n, a.d, a.eps, a.out, st); break;
    case DType::Float16: launch<__half>(a.x, a.n, a.d, a.eps, a.out, st); break;
    case DType::BFloat16: launch<__nv_bfloat16>(a.x, a.n, a.d, a.eps, a.out, st); break;
  }
}

}  // namespace pyface
