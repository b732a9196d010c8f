// Batched selective fitting of landmark/pose pseudo-labels (Algorithm 1, lines
// 17-33); the rules are in csrc/include/pyface/selective_fit_math.h.
#pragma once
#include <cstdint>

#include "pyface/cpu_isa.h"

namespace pyface {

// T = float or double (inputs and outputs; all arithmetic in T). Row-major:
// samples [B, N, P, 2], poses [B, N, 3], valid [B, N] (bool as uint8),
// face_size [B]; out: landmarks [B, P, 2], pose [B, 3], accepted [B], kept [B, N].
template <typename T>
struct SelFitArgs {
  const T* samples;
  const T* poses;
  const uint8_t* valid;
  const T* face_size;
  int64_t B, N, P;
  T threshold;
  int64_t keep, min_samples;
  T* landmarks;
  T* pose;
  uint8_t* accepted;
  uint8_t* kept;
};

PYFACE_CPU_KERNELS(template <typename T> void selective_fit_cpu(const SelFitArgs<T>& a);)
#ifdef PYFACE_WITH_CUDA
template <typename T>
void selective_fit_cuda(const SelFitArgs<T>& a, void* stream);
#endif

}  // namespace pyface
