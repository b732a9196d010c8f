// Fused landmark loss (Eq. 3-9): Wing + lambda * MSE per sample, with the dynamic
// lambda from the mean 3D face rotated by the pose and projected. See
// csrc/include/pyface/landmark_math.h for the arithmetic, pyface/ops/landmark.py
// for the op around these kernels.
#pragma once
#include <cstdint>

#include "pyface/cpu_isa.h"

namespace pyface {

template <typename T>
struct LandmarkArgs {
  const T* pred;    // [B, 68, 2]
  const T* target;  // [B, 68, 2]
  const T* pose;    // [B, 3] (yaw, pitch, roll) degrees
  const T* shape;   // [68, 3] mean 3D face, image axes
  int64_t B;
  T w, eps;  // Wing width and curvature
  T lambda;  // fixed weight when !dynamic
  bool dynamic;
};

PYFACE_CPU_KERNELS(
// rows[B] = loss_b, lam[B] = lambda_b; flags[0] |= landmark::Flag bits for
// non-finite inputs (flags must be zeroed by the caller).
template <typename T>
void landmark_fwd_cpu(const LandmarkArgs<T>& a, T* rows, T* lam, int32_t* flags);
// dpred[B, 68, 2] = grad_rows_b * d loss_b / d pred with lam held constant.
template <typename T>
void landmark_bwd_cpu(const LandmarkArgs<T>& a, const T* lam, const T* grad_rows, T* dpred);
// R[n, 3, 3] from pose[n, 3] (geometry_math.h; lets tests cross-check geometry.py).
template <typename T>
void euler_to_matrix_cpu(const T* pose, int64_t n, T* R);
)

#ifdef PYFACE_WITH_CUDA
template <typename T>
void landmark_fwd_cuda(const LandmarkArgs<T>& a, T* rows, T* lam, int32_t* flags, void* stream);
template <typename T>
void landmark_bwd_cuda(const LandmarkArgs<T>& a, const T* lam, const T* grad_rows, T* dpred, void* stream);
template <typename T>
void euler_to_matrix_cuda(const T* pose, int64_t n, T* R, void* stream);
#endif

}  // namespace pyface
