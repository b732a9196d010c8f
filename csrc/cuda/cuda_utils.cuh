// Helpers for the CUDA backend: error checking, dtype loads, block reductions.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#include "pyface/common.h"

namespace pyface {

inline void cuda_check(cudaError_t err, const char* what) {
  if (err != cudaSuccess) {
    throw std::runtime_error(std::string("pyface CUDA error in ") + what + ": " + cudaGetErrorString(err));
  }
}
#define PYFACE_CUDA_CHECK_LAUNCH(name) ::pyface::cuda_check(cudaGetLastError(), name)

// Sum over the 32 lanes of a full warp (xor butterfly): every lane ends with the
// same bits, so lanes can branch on the result uniformly.
template <typename T>
__device__ __forceinline__ T warp_sum(T v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

inline cudaStream_t as_stream(void* s) { return reinterpret_cast<cudaStream_t>(s); }

inline unsigned ceil_div(long long a, long long b) { return static_cast<unsigned>((a + b - 1) / b); }

}  // namespace pyface
